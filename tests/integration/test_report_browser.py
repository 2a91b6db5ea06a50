"""report.html in a real browser, on synthetic runs (tests/reportdata.py; the real runs'
pages are opened in test_report_runs.py): Debian's chromium, headless, driven by
Selenium through Debian's chromedriver (tests/browser.py). Chromium runs as root here,
and as root it starts only with --no-sandbox (tests/browser.py says why).

Each test saves a screenshot in its tmp_path for a person to look at."""

from __future__ import annotations

import time

import pytest

from lab.app import htmlreport
from tests import browser
from tests.reportdata import synthetic_run
from tests.unit.test_htmlreport import HOSTILE, _hostile_run

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(bool(browser.available()), reason=browser.available())]


@pytest.fixture(scope="module")
def chrome():
    with browser.chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def run_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    run = synthetic_run(out, cells=24, tests=480, fail=0.04, repeat=2, seed=11)
    return htmlreport.write(htmlreport.load(out)), run


def _open(driver, path, shot=None):
    browser.requests(driver)                      # forget what came before
    browser.console_errors(driver)
    browser.open_page(driver, path)
    if shot is not None:
        driver.save_screenshot(str(shot))
        print(f"screenshot: {shot}")


def _displayed(driver, css: str) -> list[bool]:
    return [e.is_displayed() for e in driver.find_elements("css selector", css)]


def test_the_page_loads_with_no_error_and_no_request_but_itself(chrome, run_page, tmp_path):
    page, _ = run_page
    _open(chrome, page, tmp_path / "report.png")
    assert browser.console_errors(chrome) == []
    assert browser.requests(chrome) == [page.absolute().as_uri()]
    assert chrome.execute_script("return document.readyState") == "complete"
    assert chrome.find_element("id", "controls").is_displayed()     # the script ran


def test_failures_are_expanded_and_passes_collapsed(chrome, run_page, tmp_path):
    page, run = run_page
    _open(chrome, page)
    failures = chrome.find_elements("css selector", "details.failure")
    assert failures and all(f.get_attribute("open") is not None for f in failures)
    body = failures[0].find_element("css selector", "dl")
    assert body.is_displayed()
    repro = failures[0].find_element("css selector", "pre.repro").text
    first = htmlreport.failures(run)[0].first
    assert repro.startswith(f"lab kselftest --arch {first.cell.cell.arch} ")
    passing = chrome.find_elements("css selector", "details.cell[data-st=pass]")
    assert passing and all(p.get_attribute("open") is None for p in passing)
    assert not any(_displayed(chrome, "details.cell[data-st=pass] dl"))
    chrome.save_screenshot(str(tmp_path / "failures.png"))


def test_a_filter_click_hides_the_passes_and_the_search_box_filters(chrome, run_page, tmp_path):
    page, run = run_page
    _open(chrome, page)
    assert all(_displayed(chrome, "details.cell[data-st=pass] > summary"))
    chrome.find_element("id", "problems-only").click()
    assert not any(_displayed(chrome, "details.cell[data-st=pass] > summary"))
    assert all(_displayed(chrome, "details.cell[data-st=fail] > summary"))
    chrome.save_screenshot(str(tmp_path / "problems-only.png"))
    chrome.find_element("css selector", "button[data-show=all]").click()
    assert all(_displayed(chrome, "details.cell[data-st=pass] > summary"))
    wanted = run.cells[3].id
    chrome.find_element("id", "q").send_keys(wanted)
    shown = [e.text for e in chrome.find_elements("css selector", "details.cell > summary")
             if e.is_displayed()]
    assert shown and all(wanted in s for s in shown)


def test_a_column_sorts_by_a_click(chrome, run_page):
    page, _ = run_page
    _open(chrome, page)
    chrome.execute_script("document.querySelectorAll('details.cell').forEach("
                          "function (d) { d.open = true; })")
    table = chrome.find_elements("css selector", "details.cell table.sortable")[0]
    head = table.find_elements("css selector", "thead th")[0]      # boot
    column = "return Array.from(arguments[0].tBodies[0].rows).map(r => r.cells[0].textContent)"
    head.click()
    up = chrome.execute_script(column, table)
    head.click()
    assert chrome.execute_script(column, table) == list(reversed(up))


def test_without_script_details_still_open_and_close(run_page, tmp_path):
    page, _ = run_page
    opts = browser.options()
    opts.add_experimental_option("prefs", {"profile.managed_default_content_settings."
                                           "javascript": 2})
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    driver = webdriver.Chrome(service=Service(str(browser.CHROMEDRIVER)), options=opts)
    try:
        browser.open_page(driver, page)
        assert not driver.find_element("id", "controls").is_displayed()
        closed = driver.find_element("css selector", "details.cell[data-st=pass]")
        assert not closed.find_element("css selector", "dl").is_displayed()
        closed.find_element("css selector", "summary").click()
        assert closed.find_element("css selector", "dl").is_displayed()
        driver.save_screenshot(str(tmp_path / "no-script.png"))
    finally:
        driver.quit()


def test_hostile_content_is_text_runs_nothing_and_breaks_no_layout(chrome, tmp_path):
    out = tmp_path / "hostile"
    out.mkdir()
    page = htmlreport.write(htmlreport.Source(out, _hostile_run(out), out))
    _open(chrome, page, tmp_path / "hostile.png")
    from selenium.common.exceptions import NoAlertPresentException
    with pytest.raises(NoAlertPresentException):
        chrome.switch_to.alert.text                               # noqa: B018
    assert browser.console_errors(chrome) == []
    assert browser.requests(chrome) == [page.absolute().as_uri()]
    counts = chrome.execute_script(
        "return [document.scripts.length, document.images.length, "
        "document.querySelectorAll('iframe, object, embed, style').length, "
        "document.querySelectorAll('[onerror], [onload], [onclick]').length]")
    assert counts == [1, 0, 1, 0]
    text = chrome.execute_script("return document.body.textContent")
    for s in HOSTILE[:5]:
        shown = s.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\x00", "\\x00")
        assert shown in text, s
    assert "\ufffd\ufffd lone" in text and "</pre></details><script>alert(7)</script>" in text
    width = chrome.execute_script("return [document.documentElement.scrollWidth, "
                                  "window.innerWidth]")
    assert width[0] <= width[1], width


def test_a_long_name_without_spaces_wraps_instead_of_widening_the_page(chrome, tmp_path):
    out = tmp_path / "long"
    run = synthetic_run(out, cells=2, tests=4, fail=1.0, seed=12, hostile="x" * 300)
    page = htmlreport.write(htmlreport.Source(out, run, out))
    _open(chrome, page, tmp_path / "long.png")
    chrome.execute_script("document.querySelectorAll('details').forEach("
                          "function (d) { d.open = true; })")
    width = chrome.execute_script("return [document.documentElement.scrollWidth, "
                                  "window.innerWidth]")
    assert width[0] <= width[1], width


def test_five_thousand_tests_load_in_seconds(chrome, tmp_path):
    out = tmp_path / "big"
    synthetic_run(out, cells=200, tests=5000, seed=13)
    page = htmlreport.write(htmlreport.load(out))
    started = time.monotonic()
    _open(chrome, page, tmp_path / "big.png")
    took = time.monotonic() - started
    assert browser.console_errors(chrome) == []
    rows = chrome.execute_script("return document.querySelectorAll('tr.f').length")
    assert rows >= 5000
    print(f"{page.stat().st_size:,} bytes loaded in {took:.2f} s")
    assert took < 20
