#!/usr/bin/env python3
"""report.html against pytest-html on the same 5,000 tests: file size and the time
headless Chromium takes to show each, measured side by side.

    .venv/bin/python bench/report.py [--cells 200] [--tests 5000] [--rounds 5] [--json FILE]

1. A synthetic run (tests/reportdata.py): 200 cells of 25 kselftest rows each, 2% of
   them failing, 5% skipped, 1% xfail, with a console.log and a step output per cell,
   written as lab run writes it (results.json, junit.xml, the logs). `lab report DIR`
   makes report.html (its time is a whole `lab report` process).
2. The same 5,000 tests through pytest: a test module generated from junit.xml, one
   test per JUnit case, that passes, fails with the case's message and text, or skips
   with its reason (xfail: pytest.xfail with it); run by pytest with pytest-html 4
   (`--html --self-contained-html`), in a venv of its own (~/.cache/lab/bench/
   pytest-html-venv, made on first use: pytest-html 4.x from PyPI). A failing test
   prints the same output excerpt report.html shows for it, so both pages carry the
   same words.
3. Each page opened in headless Chromium (Debian's, through chromedriver; tests/
   browser.py), the two interleaved round by round, the first alternating. The time is
   the page's own clock (performance.now(): from the start of the navigation) when its
   rows are in the DOM and two animation frames have passed (painted): pytest-html 4
   builds its table with script from a JSON blob after the load event, report.html
   has it in the HTML. A blank page comes between loads.

Prints each page's size and median load time over the rounds (min-max) and the
ratios pytest-html / lab. The machine is shared: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.venvs import tool_python  # noqa: E402
from tests import browser  # noqa: E402
from tests.reportdata import synthetic_run  # noqa: E402

VENV = Path.home() / ".cache" / "lab" / "bench" / "pytest-html-venv"

#: The pytest module: one test per JUnit case, read from cases.json beside it.
TEST_MODULE = '''\
import json
import pathlib

import pytest

CASES = json.loads((pathlib.Path(__file__).parent / "cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case):
    if case["status"] == "fail":
        print(case["output"])
        pytest.fail(case["message"] + "\\n" + case["text"], pytrace=False)
    if case["status"] == "skip":
        if case["message"].startswith("xfail"):
            pytest.xfail(case["message"])
        pytest.skip(case["message"] or "skipped")
'''


def pytest_html_python() -> tuple[Path, str]:
    """The venv's python (made on first use) and pytest-html's version."""
    return tool_python(VENV.name, "pytest-html", ["pytest-html>=4,<5"])


def cases_from_junit(run_dir: Path) -> list[dict]:
    """Each JUnit case, with the output excerpt report.html shows for its failure."""
    import xml.etree.ElementTree as ET
    excerpts = {}
    for out in run_dir.rglob("step-01.out"):
        lines = out.read_text(errors="replace").splitlines()[-40:]
        excerpts[out.parent.name] = "\n".join(lines)
    cases = []
    for case in ET.parse(run_dir / "junit.xml").getroot().iter("testcase"):
        status, message, text = "pass", "", ""
        for tag, word in (("failure", "fail"), ("error", "fail"), ("skipped", "skip")):
            found = case.find(tag)
            if found is not None:
                status, message, text = word, found.get("message", ""), found.text or ""
        cell = case.get("classname", "").split(".", 1)[-1]
        cases.append({"id": f"{case.get('classname')}::{case.get('name')}", "status": status,
                      "message": message, "text": text,
                      "output": excerpts.get(cell, "") if status == "fail" else ""})
    return cases


def make_pages(work: Path, cells: int, tests: int) -> tuple[Path, Path, dict]:
    run_dir = work / "run"
    synthetic_run(run_dir, cells=cells, tests=tests, fail=0.02, skip=0.05, xfail=0.01)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "lab", "report", str(run_dir)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    lab_s = time.monotonic() - started
    python, version = pytest_html_python()
    suite = work / "pytest"
    suite.mkdir()
    cases = cases_from_junit(run_dir)
    (suite / "cases.json").write_text(json.dumps(cases))
    (suite / "test_from_junit.py").write_text(TEST_MODULE)
    page = work / "pytest-html.html"
    started = time.monotonic()
    subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--html={page}", "--self-contained-html", str(suite)], cwd=work,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pytest_s = time.monotonic() - started
    return run_dir / "report.html", page, {"pytest_html": version, "cases": len(cases),
                                          "lab_report_s": lab_s, "pytest_run_s": pytest_s}


#: Rows in the DOM, by page: report.html's test rows, pytest-html's result rows.
ROWS = {"lab": "tr.f", "pytest-html": "#results-table tbody.results-table-row"}

WAIT_PAINTED = """
const [css, want, done] = arguments;
function check() {
  if (document.readyState === 'complete' && document.querySelectorAll(css).length >= want) {
    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));
  } else {
    setTimeout(check, 5);
  }
}
check();
"""


def load_s(driver, page: Path, css: str, want: int) -> float:
    driver.get("about:blank")
    driver.get(page.absolute().as_uri())
    return driver.execute_async_script(WAIT_PAINTED, css, want) / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--tests", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if problem := browser.available():
        sys.exit(f"bench/report.py: {problem}")
    with tempfile.TemporaryDirectory(prefix="lab-bench-report-") as tmp:
        lab_page, pytest_page, meta = make_pages(Path(tmp), args.cells, args.tests)
        pages = {"lab": lab_page, "pytest-html": pytest_page}
        want = {"lab": args.tests, "pytest-html": meta["cases"]}
        times: dict[str, list[float]] = {k: [] for k in pages}
        with browser.chromium() as driver:
            for r in range(args.rounds):
                for name in (list(pages) if r % 2 == 0 else list(reversed(pages))):
                    times[name].append(load_s(driver, pages[name], ROWS[name], want[name]))
        sizes = {k: p.stat().st_size for k, p in pages.items()}
    print(f"{args.cells} cells, {args.tests:,} tests ({meta['cases']:,} JUnit cases with the "
          f"boots); pytest-html {meta['pytest_html']}; {args.rounds} interleaved rounds")
    print(f"{'page':12} {'size (MB)':>10} {'load (s), median':>17} {'min-max':>13}")
    for name in pages:
        t = times[name]
        print(f"{name:12} {sizes[name] / 1e6:10.2f} {statistics.median(t):17.2f} "
              f"{min(t):6.2f}-{max(t):.2f}")
    ratio_size = sizes["pytest-html"] / sizes["lab"]
    ratio_load = statistics.median(times["pytest-html"]) / statistics.median(times["lab"])
    print(f"pytest-html / lab: size {ratio_size:.2f}x, load {ratio_load:.2f}x")
    print(f"(lab report took {meta['lab_report_s']:.1f} s, a whole process; the pytest run "
          f"with pytest-html {meta['pytest_run_s']:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "load_s": times, **meta}, indent=2))


if __name__ == "__main__":
    main()
