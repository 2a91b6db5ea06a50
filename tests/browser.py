"""A real browser for the report's tests and bench/report.py: Debian's chromium,
driven headless through Debian's chromedriver (/usr/bin/chromedriver) with
Selenium. Nothing downloads a browser (Selenium Manager is never asked: the
driver's path is given).

Chromium runs here as root, and as root it starts only with --no-sandbox: its
sandbox needs an unprivileged user namespace for the renderer, which it refuses
to set up for root. The pages it opens are the lab's own reports, whose CSP
allows no script but their own, and the tests check that nothing is fetched."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")


def available() -> str:
    """"" when the browser can be driven here, else why not."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return (f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver "
                "(lab doctor --install)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return ""


def options(width: int = 1280, height: int = 1000):
    from selenium.webdriver.chrome.options import Options
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new",
                # root: Chromium's sandbox refuses to run as root (see the docstring)
                "--no-sandbox",
                # a chroot or container may have a tiny /dev/shm
                "--disable-dev-shm-usage", "--disable-gpu",
                # nothing of the browser's own reaches the network either
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-default-apps",
                "--disable-extensions", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return opts


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator:
    """A headless Chromium under Selenium; quit on the way out."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    service = Service(executable_path=str(CHROMEDRIVER),
                      log_output=open(os.devnull, "w"))
    driver = webdriver.Chrome(service=service, options=options(width, height))
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """What the page logged at level SEVERE (a script error, a CSP violation)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def requests(driver) -> list[str]:
    """Every URL the browser asked for since the last call, from its performance log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def open_page(driver, path: Path) -> None:
    driver.get(path.absolute().as_uri())


def have_chromium() -> bool:
    return shutil.which(str(CHROMIUM)) is not None
