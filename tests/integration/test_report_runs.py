"""report.html of real runs, opened in headless Chromium (tests/browser.py: Debian's
chromium through Debian's chromedriver; as root Chromium needs --no-sandbox, which
tests/browser.py passes): a failing cell whose names, commands, outputs and kernel
lines are hostile, the kpti comparison of the catalogue (what ./bootstrap run shows),
and a kselftest tree. Each test saves screenshots in its tmp_path."""

from __future__ import annotations

import json
import re

import pytest

from tests import browser
from tests.conftest import cells_of, lab

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(bool(browser.available()), reason=browser.available())]

#: Step names and what the guest prints: each must reach the page as text.
NAMES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)> </style>',
         "javascript:alert(3)"]
PRINTED = ["<script>alert(4)</script>", '"><img src=x onerror=alert(5)>', "</style><b>bold",
           "javascript:alert(6)"]
KERNEL_LINE = "lab-hostile <img src=x onerror=alert(7)></pre><script>alert(8)</script>"


def _hostile_scenario(tmp_path):
    printf = " ".join(f"'{p}'" for p in PRINTED)
    steps = [
        {"name": NAMES[0], "when": {"cmdline": "default"},
         "run": f"printf '%s\\n' {printf}; printf 'invalid \\377\\376 UTF-8\\n'",
         "match": "never printed"},
        {"name": NAMES[1], "when": {"cmdline": "default"},
         "run": f"echo '{KERNEL_LINE}' > /dev/kmsg; printf 'kmsg \\377\\n' > /dev/kmsg; "
                "sleep 0.2; exit 3"},
        {"name": NAMES[2], "run": "echo 'javascript:alert(9)'"},
    ]
    path = tmp_path / "hostile.yaml"
    path.write_text("name: hostile\n"
                    "matrix: {arch: [aarch64], kernel: [nokpti], "
                    "cmdline: {default: '', quiet: 'loglevel=4'}}\n"
                    "steps:\n" + "".join(f"  - {json.dumps(s)}\n" for s in steps))
    return path


@pytest.fixture(scope="module")
def chrome():
    with browser.chromium() as driver:
        yield driver


def _open(driver, path, shot):
    browser.requests(driver)
    browser.console_errors(driver)
    browser.open_page(driver, path)
    driver.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert browser.console_errors(driver) == []
    assert browser.requests(driver) == [path.absolute().as_uri()]


def test_a_failing_cell_with_hostile_content(chrome, tmp_path):
    out = tmp_path / "out"
    result = lab("run", str(_hostile_scenario(tmp_path)), "--out", str(out), "-j1")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    # off a terminal: plain lines, ending with the failures and where the page is
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith(f"report: {out}/report.html (")
    assert lines[-2].startswith("results: ")
    fails = [x for x in lines if x.startswith("FAIL hostile/aarch64-nokpti-default: step ")]
    assert len(fails) == 2 and NAMES[0] in fails[0]
    page = out / "report.html"
    _open(chrome, page, tmp_path / "hostile.png")
    from selenium.common.exceptions import NoAlertPresentException
    with pytest.raises(NoAlertPresentException):
        chrome.switch_to.alert.text                               # noqa: B018
    assert chrome.execute_script(
        "return [document.scripts.length, document.images.length, "
        "document.querySelectorAll('[onerror]').length]") == [1, 0, 0]
    failures = chrome.find_elements("css selector", "details.failure")
    assert len(failures) == 2 and all(f.get_attribute("open") is not None for f in failures)
    text = chrome.execute_script("return document.body.textContent")
    for s in NAMES + PRINTED + [KERNEL_LINE, "invalid \ufffd\ufffd UTF-8"]:
        assert s in text, s
    # the kernel log keeps a byte that is no UTF-8 as the character of its value (ÿ)
    assert re.search("kmsg [\ufffd\xff]", text)
    repro = failures[0].find_element("css selector", "pre.repro").text
    assert repro.startswith("lab exec --arch aarch64 --kernel nokpti -- sh -c ")
    assert "lab run " in repro and "--only cmdline=default" in repro
    # the passing cell is collapsed, and a filter click hides it
    passing = chrome.find_element("css selector", "details.cell[data-st=pass]")
    assert passing.get_attribute("open") is None and passing.is_displayed()
    chrome.find_element("id", "problems-only").click()
    assert not passing.is_displayed()
    chrome.save_screenshot(str(tmp_path / "hostile-problems-only.png"))
    width = chrome.execute_script("return [document.documentElement.scrollWidth, "
                                  "window.innerWidth]")
    assert width[0] <= width[1], width


def test_the_kpti_comparison_ends_the_run_and_fills_the_page(chrome, catalogue, tmp_path):
    """What ./bootstrap run shows: the verdict table at the end of lab run, and a page
    with the six cells and their verdicts."""
    out, result, results = catalogue
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    verdicts = [x for x in lines if x.startswith("verdict ")]
    assert len(verdicts) == 8                     # 2 metrics x 2 arches x 2 cells each
    assert lines.index(verdicts[-1]) > max(i for i, x in enumerate(lines)
                                           if x.startswith("cell "))
    assert lines[-1].startswith(f"report: {out}/report.html")
    assert (out / "kpti" / "compare.json").is_file() and (out / "kpti" / "compare.png").is_file()
    page = out / "report.html"
    _open(chrome, page, tmp_path / "catalogue.png")
    grid = chrome.execute_script(
        "var t = Array.from(document.querySelectorAll('#matrix h3')).find("
        "  function (h) { return h.textContent === 'kpti'; }).nextElementSibling;"
        "return Array.from(t.querySelectorAll('td')).filter("
        "  function (td) { return !td.classList.contains('none'); }).map("
        "  function (td) { return td.className; });")
    assert grid == ["st-pass"] * len(cells_of(results, "kpti")) == ["st-pass"] * 6
    comparisons = chrome.find_element("id", "comparisons")
    chrome.execute_script("arguments[0].scrollIntoView()", comparisons)
    chrome.save_screenshot(str(tmp_path / "catalogue-comparisons.png"))
    said = comparisons.text
    assert "kpti: against kernel=nokpti" in said
    shown = re.findall(r"(aarch64|x86_64) kpti/forced-(on|off) (?:is (?:higher|lower) than|"
                       r"against|is equivalent to)", said)
    assert len(shown) == 8
    assert len(comparisons.find_elements("css selector", "svg")) == 4    # metric x arch
    assert "Emulation inflates the cost of KPTI" in said
    for arch in ("aarch64", "x86_64"):
        assert re.search(rf"{arch} kpti/forced-on is higher than nokpti/default", said)


def test_a_kselftest_tree(chrome, tmp_path):
    out = tmp_path / "ksft"
    result = lab("kselftest", "--arch", "x86_64", "--kernel", "nokpti", "--out", str(out),
                 "proc", "x86")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith(f"report: {out}/report.html")
    data = json.loads((out / "results.json").read_text())
    tests = [t for c in data["cells"] for s in c["steps"] for t in s["tests"]]
    page = out / "report.html"
    _open(chrome, page, tmp_path / "kselftest.png")
    section = chrome.find_element("id", "tests")
    (cell,) = section.find_elements("css selector", ":scope > details")
    assert cell.get_attribute("open") is None                 # a collapsed tree
    cell.find_element("css selector", "summary").click()
    suites = cell.find_elements("css selector", "details.suite")
    assert {s.find_element("css selector", "summary code").text for s in suites} == {"proc",
                                                                                      "x86"}
    for s in suites:
        if s.get_attribute("open") is None:
            s.find_element("css selector", "summary").click()
    chrome.execute_script("arguments[0].scrollIntoView()", section)
    chrome.save_screenshot(str(tmp_path / "kselftest-tree.png"))
    rows = cell.find_elements("css selector", "tr.f")
    assert len(rows) == len(tests)
    text = section.text
    for t in tests:
        if t["status"] == "skip" and t["message"]:
            assert t["message"].splitlines()[0][:60] in text, t
    xfails = [t for t in tests if t["message"].startswith("xfail")]
    header = chrome.find_element("css selector", "header.top").text
    assert f"{len(xfails)} expected failures" in header
