"""report.html without a browser (tests/integration/test_report_browser.py opens it in
one): what the page holds and in what order, that it fetches nothing and runs only its
own script, that hostile names, commands, outputs and log paths stay text, that it stays
small however large the logs, old results formats, and lab report's bad input."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lab.app import htmlreport, report, webpage
from lab.core.model import BootFacts, Cell, HostFacts, KernelMessage
from lab.core.results import BootResult, CellResult, RunResult, Status, StepResult, TestResult
from tests.reportdata import synthetic_run
from tests.unit.inprocess import lab
from tests.unit.test_trust_inputs import refused

HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "</style><b>x",
           "javascript:alert(3)", "a\x1b[31mred\x07\x00nul", "\udcff\ud800 lone", "é ✔ 中"]


class Page(HTMLParser):
    """What a browser's parser makes of a page: elements with attributes, and text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in.append(tag)

    def handle_endtag(self, tag):
        if tag in self._in:
            while self._in and self._in.pop() != tag:
                pass

    def handle_data(self, data):
        if self._in and self._in[-1] == "script":
            self.scripts.append(data)
        elif not self._in or self._in[-1] != "style":
            self.text.append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements if t == name]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def _page(out: Path, results: RunResult | None = None, **kw) -> str:
    if results is None:
        results = RunResult.from_json(json.loads((out / "results.json").read_text()))
    src = htmlreport.Source(out, results, out, **kw)
    return htmlreport.write(src).read_text()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    run = synthetic_run(out, cells=20, tests=400, fail=0.05, repeat=2, seed=3)
    return out, run, Page(_page(out, run))


# ---------------------------------------------------------------- nothing fetched

def _sha(content: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()


def test_the_page_fetches_nothing_and_runs_only_its_own_script(synthetic):
    out, _, page = synthetic
    html = (out / "report.html").read_text()
    (meta,) = [a for a in page.tags("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    policy = meta["content"]
    assert "default-src 'none'" in policy and "base-uri 'none'" in policy
    assert f"script-src '{_sha(webpage.SCRIPT)}'" in policy
    assert f"style-src '{_sha(webpage.STYLE)}'" in policy
    assert page.scripts == [webpage.SCRIPT] and len(page.tags("script")) == 1
    assert len(page.tags("style")) == 1
    for tag, attrs in page.elements:
        assert "src" not in attrs and "style" not in attrs, (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        if tag == "a":
            assert attrs["href"].startswith(("./", "#")), attrs
    assert "url(" not in html and "@import" not in html
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)


def test_without_script_the_page_works_by_details_and_hides_its_controls(synthetic):
    _, _, page = synthetic
    (controls,) = [a for t, a in page.elements if a.get("id") == "controls"]
    assert "hidden" in controls               # shown by the script only
    assert page.tags("details")


# ---------------------------------------------------------------- what it shows, in order

def test_failures_come_first_expanded_and_passes_are_collapsed(synthetic):
    out, run, page = synthetic
    html = (out / "report.html").read_text()
    order = [html.index(f'id="{k}"') for k in ("failures", "matrix", "tests", "cells",
                                                 "timeline", "files")]
    assert order == sorted(order)
    failures = [a for a in page.tags("details") if "failure" in (a.get("class") or "")]
    assert failures and all("open" in a for a in failures[:htmlreport.MAX_DETAILED])
    cells = [a for a in page.tags("details") if "cell " in (a.get("class") or "") + " "]
    assert len(cells) == len(run.cells)
    for a in cells:
        assert ("open" in a) == (a["data-st"] != "pass"), a


def test_the_header_counts_what_ran_and_says_what_the_exit_code_meant(synthetic):
    _, run, page = synthetic
    counts = htmlreport.Counts.of(run)
    text = page.all_text
    assert f"{counts.failures:,} test failures" in text and f"{counts.passes:,} passes" in text
    assert f"{counts.xfails:,} expected failures" in text
    assert "Exit code 1: a test failed" in text
    assert "Emulation is not hardware" in text and "QEMU 7.2.0" in text
    assert "bench-host" in text and "lab 0.1.0" in text


def test_each_failure_shows_the_step_command_expectation_and_how_to_reproduce(synthetic):
    out, run, page = synthetic
    text = page.all_text
    fails = htmlreport.failures(run)
    first = fails[0].first
    assert first.kind == "test" and first.step is not None
    assert first.step.command in text and "every test passes or skips" in text
    target, _, test = first.name.partition(".")
    cell = first.cell.cell
    assert (f"lab kselftest --arch {cell.arch} --kernel {cell.kernel} --cmdline "
            f"{cell.cmdline_words[0]} {target}:{test}") in text
    assert "QEMU's exact command line" in text
    hrefs = {a["href"] for a in page.tags("a")}
    console = first.boot.logs["console"]
    assert f"./{console}" in hrefs and f"./{Path(console).parent}/reproduce.sh" in hrefs
    assert f"./{first.step.output}" in hrefs


def test_the_matrix_is_a_grid_of_linked_cells_with_each_boot(synthetic):
    _, run, page = synthetic
    ids = {a.get("id") for _, a in page.elements}
    grid_links = [a["href"][1:] for a in page.tags("a") if a.get("title") in
                  {c.id for c in run.cells}]
    assert len(grid_links) == len(run.cells) and set(grid_links) <= ids


def test_a_test_is_flaky_only_when_its_boots_disagree():
    def cell(kernel: str, *statuses: Status) -> CellResult:
        boots = [BootResult(i, BootFacts("6.1", "tcg", "", 0.5, None), [
            StepResult("s", "kselftest", i, s, tests=(TestResult("proc.read", s),))])
            for i, s in enumerate(statuses)]
        return CellResult(Cell("aarch64", kernel, "default", ()), "x", boots=boots)
    flaky = htmlreport.tests_of(cell("a", Status.PASS, Status.FAIL, Status.PASS))
    steady = htmlreport.tests_of(cell("a", Status.FAIL, Status.FAIL))
    assert [t.flaky for t in flaky if t.kind == "test"] == [True]
    assert [t.flaky for t in steady if t.kind == "test"] == [False]
    # passing on one kernel and failing on another is a difference, not flakiness
    run = RunResult([{"name": "x"}], HostFacts(), 1, "wallclock",
                    [cell("a", Status.PASS), cell("b", Status.FAIL)])
    assert htmlreport.Counts.of(run).flaky == 0
    # an error (the boot's) next to a pass is no flakiness either
    mixed = htmlreport.tests_of(cell("a", Status.PASS, Status.ERROR))
    assert not any(t.flaky for t in mixed)
    assert re.sub("<[^>]+>", "", htmlreport.outcomes(flaky[0].rows)) == "✔✘✔"


def test_reproduce_lines_for_a_command_a_boot_and_a_kunit_test():
    c = Cell("x86_64", "kpti", "forced-on", ("pti=on",))
    step = StepResult("echo", "run", 0, Status.FAIL, command="echo 'a b' | grep c")
    cell = CellResult(c, "s", boots=[BootResult(0, None, [step], error="no ready marker")])
    run = RunResult([{"name": "s", "path": "scenarios/s.yaml"}], HostFacts(), 1, "wallclock",
                    [cell])
    rows = htmlreport.rows_of(cell)
    assert htmlreport.reproduce(run, rows[1]) == [
        "lab exec --arch x86_64 --kernel kpti --cmdline pti=on -- sh -c 'echo '\"'\"'a b'\"'\"' "
        "| grep c'",
        "lab run scenarios/s.yaml --only arch=x86_64 --only kernel=kpti --only cmdline=forced-on"]
    assert htmlreport.reproduce(run, rows[0])[0] == \
        "lab exec --arch x86_64 --kernel kpti --cmdline pti=on --cold -- true"
    kunit = StepResult("k", "kunit", 0, Status.FAIL,
                       tests=(TestResult("list-kunit-test.list_test_list_init", Status.FAIL),))
    row = htmlreport.Row(cell, cell.boots[0], "test", kunit.tests[0].name, Status.FAIL,
                         step=kunit, test=kunit.tests[0])
    assert htmlreport.reproduce(run, row)[0] == \
        "lab kunit --arch x86_64 --kernel kpti --cmdline pti=on list-kunit-test"


# ---------------------------------------------------------------- hostile content

def _hostile_run(out: Path) -> RunResult:
    """Every string a run has, hostile; logs with invalid UTF-8 and control bytes; log
    names that try to leave the directory or to be a URL."""
    h = "|".join(HOSTILE)
    logdir = out / "s" / "c"
    logdir.mkdir(parents=True)
    (logdir / "step-01.out").write_bytes(b"out \xff\xfe\xc3 <script>alert(5)</script>\n"
                                         + "\n".join(HOSTILE).encode("utf-8", "replace"))
    (logdir / "console.log").write_bytes(
        b"    1.000 kernel | <img src=x onerror=alert(6)> \xff\x1b[0m\n"
        b"    1.100 kernel | </pre></details><script>alert(7)</script>\n")
    step = StepResult(h, "run", 0, Status.FAIL, 0.5, 1, f"exit code 1: {h}",
                      "s/c/step-01.out", command=f"echo '{h}'", expected=f"exit 0 {h}")
    test = TestResult(f"suite.{h}", Status.FAIL, h, (KernelMessage(h, True, h),))
    kstep = StepResult("k", "kselftest", 0, Status.FAIL, tests=(test,))
    boot = BootResult(0, BootFacts(h, "tcg", h, 0.5, None, "cold", h, h), [step, kstep],
                      {h: [1.0]}, [KernelMessage("oops", True, h)], 0,
                      {"console": "s/c/console.log", "qemu": "javascript:alert(8)",
                       "qmp": "../../../../etc/passwd", h: h}, worker={"host": h},
                      start_s=0.0, duration_s=1.0)
    cell = CellResult(Cell("aarch64", h, h, (h,)), "s", config={h: h}, boots=[boot],
                      units={h: h}, kernel_source={"describe": h}, kernel={"hash": h,
                                                                           "fragments": [h]})
    return RunResult([{"name": "s", "description": h, "path": h}],
                     HostFacts(h, h, h, h, 2, h), 1, "wallclock", [cell], lab_version=h,
                     builds=[{"what": h, "start_s": 0, "duration_s": 1, "built": True}])


def test_hostile_names_commands_outputs_and_kernel_lines_stay_text(tmp_path):
    html = _page(tmp_path, _hostile_run(tmp_path))
    page = Page(html)
    assert [a for a in page.tags("script")] == [{}] and page.scripts == [webpage.SCRIPT]
    assert not page.tags("img") and not page.tags("iframe")
    assert len(page.tags("style")) == 1 and page.all_text.count("alert(") >= 8
    for tag, attrs in page.elements:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        assert not (attrs.get("href") or "./").lower().lstrip("./").startswith("javascript")
    text = page.all_text
    for s in ("<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "</style><b>x",
              "javascript:alert(3)", "é ✔ 中", "<img src=x onerror=alert(6)>",
              "</pre></details><script>alert(7)</script>"):
        assert s in text, s
    assert "\x1b" not in html and "\x00" not in html and "\x07" not in html
    assert "a\\x1b[31mred\\x07\\x00nul" in text     # control characters, made visible
    assert "\ufffd\ufffd lone" in text and "out \ufffd\ufffd\ufffd <script>" in text
    # the log names that are no files under the directory are not links
    hrefs = [a["href"] for a in page.tags("a")]
    assert not any("passwd" in h or "alert(8)" in h.replace("%28", "(") for h in hrefs)
    assert "qemu (missing)" in text and "qmp (missing)" in text


def test_a_page_is_valid_utf8_whatever_the_results_hold(tmp_path):
    path = htmlreport.write(htmlreport.Source(tmp_path, _hostile_run(tmp_path), tmp_path))
    path.read_bytes().decode("utf-8")            # strict: no lone surrogate got through


# ---------------------------------------------------------------- bounded

def test_logs_are_excerpted_and_linked_never_inlined(tmp_path):
    run = synthetic_run(tmp_path, cells=4, tests=40, fail=0.5, seed=1)
    small = len(_page(tmp_path, run))
    for out in tmp_path.rglob("step-01.out"):
        out.write_text("".join(f"line {i} {'x' * 100}\n" for i in range(100_000)))  # 10 MB
    for log in tmp_path.rglob("console.log"):
        log.write_text("".join(f"    1.000 kernel | k{i} {'y' * 100}\n" for i in range(100_000)))
    html = _page(tmp_path, run)
    fails = len(htmlreport.failures(run))
    assert len(html) < small + fails * 25_000, (len(html), small)
    page = Page(html)
    pres = [p for p in re.findall(r"<pre>(.*?)</pre>", html, re.S) if "line 99999" in p]
    assert pres and all(p.count("\n") < htmlreport.OUTPUT_LINES for p in pres)
    assert "k99999" in page.all_text and "k99979" not in page.all_text   # the last 20


def test_at_scale_the_page_stays_small_and_lists_every_test(tmp_path):
    run = synthetic_run(tmp_path, cells=200, tests=5000, seed=2)
    html = _page(tmp_path, run)
    assert len(html.encode()) < 4_000_000
    rows = html.count('<tr class="f"')
    assert rows >= 5000


def test_past_the_row_bound_passing_tests_are_counted_not_listed(tmp_path, monkeypatch):
    monkeypatch.setattr(htmlreport, "MAX_TEST_ROWS", 50)
    run = synthetic_run(tmp_path, cells=4, tests=200, fail=0.1, seed=4)
    text = Page(_page(tmp_path, run)).all_text
    assert "passing tests are counted, not listed" in text
    for f in htmlreport.failures(run):
        assert f.first.name in text


def test_more_failures_than_the_bound_are_listed_in_one_line_each(tmp_path, monkeypatch):
    monkeypatch.setattr(htmlreport, "MAX_DETAILED", 3)
    run = synthetic_run(tmp_path, cells=6, tests=60, fail=0.5, seed=5)
    page = Page(_page(tmp_path, run))
    failures = [a for a in page.tags("details") if "failure" in (a.get("class") or "")]
    assert [("open" in a) for a in failures[:4]] == [True, True, True, False]
    assert "The first 3 are shown in full" in page.all_text


# ---------------------------------------------------------------- any lab's results

def test_a_format_1_results_json_makes_a_page(tmp_path):
    from tests.unit.test_results import _format1_cell, _step1
    old = {"scenario": "kpti", "lab_version": "0.0.9", "host": {"cores": 2}, "jobs": 1,
           "timing": "wallclock", "duration_s": 9.0,
           "cells": [_format1_cell(status="fail",
                                   steps=[_step1("measure", "fail", 0, "exit code 1")])]}
    (tmp_path / "results.json").write_text(json.dumps(old))
    result = lab("report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    text = Page((tmp_path / "report.html").read_text()).all_text
    assert "kpti: 1 failure" in text and "exit code 1" in text
    assert "do not say when their boots started" in text


def test_lab_report_writes_where_out_says_with_links_relative_to_it(tmp_path):
    synthetic_run(tmp_path / "run", cells=2, tests=10, fail=0.5, seed=6)
    (tmp_path / "pages").mkdir()
    result = lab("report", str(tmp_path / "run"), "--out", str(tmp_path / "pages" / "r.html"))
    assert result.returncode == 0, result.stderr
    assert "report: " in result.stdout and "r.html" in result.stdout
    page = Page((tmp_path / "pages" / "r.html").read_text())
    hrefs = [a["href"] for a in page.tags("a") if not a["href"].startswith("#")]
    assert hrefs and all(h.startswith("./../run/") for h in hrefs)
    assert all((tmp_path / "pages" / h).resolve().is_file() for h in hrefs)


def test_against_a_baseline_regressions_fixes_and_tests_in_one_run_come_first(tmp_path):
    def one(out: Path, statuses: dict[str, Status], cells=("default",)) -> None:
        run = RunResult([{"name": "s"}], HostFacts(), 1, "wallclock", [
            CellResult(Cell("aarch64", "nokpti", c, ()), "s", boots=[BootResult(0, BootFacts(
                "6.1", "tcg", "", 0.5, None), [StepResult(n, "run", 0, s)
                                               for n, s in statuses.items()])]) for c in cells])
        report.write_results(run, out)
    one(tmp_path / "a", {"t1": Status.PASS, "t2": Status.FAIL, "t3": Status.PASS},
        ("default", "gone"))
    one(tmp_path / "b", {"t1": Status.FAIL, "t2": Status.PASS, "t4": Status.PASS})
    result = lab("report", str(tmp_path / "b"), "--baseline", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "b" / "report.html").read_text()
    assert html.index('id="baseline"') < html.index('id="failures"')
    text = Page(html).all_text
    assert "1 regression(s), 1 fix(es)" in text
    for said in ("regression", "fix", "only in the baseline", "only in this run", "t3", "t4",
                 "s/aarch64-nokpti-gone"):
        assert said in text, said
    assert ">same kernel</span>" not in html     # these results name no kernel hash


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("content, said", [
    ('{"cells": [', "not a results.json: Expecting value"),
    ('{"cells": [], "duration_s": NaN}', "NaN is not a number"),
    ('{"cells": [], "duration_s": 1e999}', "1e999 is not a finite number"),
    ('{"cells": [], "duration_s": ' + "9" * 4000 + "}", "a number of 4000 digits is too large"),
    ('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"cells": [{"arch": "a", "kernel": "k", "cmdline": "c", "scenario": "s", "steps": '
     '[{"name": "x", "kind": "run", "status": "pass", "duration_s": "fast"}]}]}',
     "'duration_s': expected a number, got a string"),
    ('[1, 2]', "'the file': expected an object, got a list"),
])
def test_lab_report_refuses_a_bad_results_json_in_one_line(tmp_path, content, said):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(content)
    line = refused(tmp_path, "report", str(tmp_path / "run"))
    assert line.startswith(f"lab: error: {tmp_path / 'run' / 'results.json'}: ")
    assert said in line
    assert not (tmp_path / "run" / "report.html").exists()


def test_lab_report_refuses_a_100_mb_string(tmp_path):
    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / "results.json", "w") as f:
        f.write('{"cells": [{"arch": "a", "kernel": "k", "cmdline": "c", "scenario": "s", '
                '"error": "')
        f.write("<script>" * 12_500_000)
        f.write('"}]}')
    line = refused(tmp_path, "report", str(tmp_path / "run"))
    assert "cells[0].error: a string of 100,000,000 characters, over the bound" in line


def test_lab_report_refuses_invalid_utf8_in_a_results_json(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_bytes(b'{"scenario": "\xff\xfe"}')
    assert "not UTF-8 text: byte 0xff" in refused(tmp_path, "report", str(tmp_path / "run"))


def test_lab_report_names_a_directory_without_results_and_an_out_it_cannot_write(tmp_path):
    (tmp_path / "empty").mkdir()
    assert refused(tmp_path, "report", str(tmp_path / "empty")) == (
        f"lab: error: {tmp_path / 'empty'}: no results.json (nor checks.json) here: not the "
        "--out directory of a lab run, kselftest, kunit or driver")
    assert refused(tmp_path, "report", str(tmp_path / "missing")) == (
        f"lab: error: {tmp_path / 'missing'}: not a directory (lab report DIR: a results "
        "directory)")
    synthetic_run(tmp_path / "run", cells=2, tests=4, seed=7)
    missing = tmp_path / "no" / "such" / "r.html"
    assert refused(tmp_path, "report", str(tmp_path / "run"), "--out", str(missing)) == (
        f"lab: error: --out {missing}: the directory {missing.parent} does not exist")
    assert refused(tmp_path, "report", str(tmp_path / "run"), "--out", str(tmp_path)) == (
        f"lab: error: --out {tmp_path}: a directory; give the page's file name "
        f"({tmp_path / 'report.html'}, say)")
    assert refused(tmp_path, "report", str(tmp_path / "run"), "--baseline",
                   str(tmp_path / "empty")).startswith(
        f"lab: error: {tmp_path / 'empty' / 'results.json'}: cannot read results")


# ---------------------------------------------------------------- the terminal

def test_off_a_terminal_the_run_ends_in_plain_lines_one_per_row(synthetic, tmp_path):
    import io
    _, run, _ = synthetic
    buffer = io.StringIO()
    saved = report.out
    report.out = report.Console(file=buffer, highlight=False, markup=False, emoji=False,
                                width=180)
    try:
        report.run_summary(run, tmp_path)
        report.run_end(run, tmp_path, None, [], htmlreport.failures(run))
    finally:
        report.out = saved
    lines = buffer.getvalue().splitlines()
    assert not any(ch in buffer.getvalue() for ch in "│┃━─┏")
    assert sum(x.startswith("cell synthetic/") for x in lines) == len(run.cells)
    fails = [x for x in lines if x.startswith("FAIL synthetic/")]
    assert len(fails) == min(len(htmlreport.failures(run)), report.MAX_FAILURE_LINES)
    assert lines[-1].startswith("results: ")


# ---------------------------------------------------------------- lab driver --check

def test_a_driver_check_directory_makes_a_page_of_its_findings(tmp_path):
    h = HOSTILE[0] + HOSTILE[1]
    data = {"driver": f"/x/{h}", "arch": "aarch64", "kernel": "nokpti", "kernel_hash": "ab" * 32,
            "release": "6.1", "kernel_source": h, "status": "fail", "checks": [
                {"name": "checkpatch", "status": "fail", "message": "", "log": "checkpatch.log",
                 "commands": [f"checkpatch.pl {h}"], "duration_s": 1.0, "findings": [
                     {"file": h, "line": 3, "column": 0, "severity": "WARNING", "type": "T",
                      "message": h}]},
                {"name": "sparse", "status": "pass", "findings": [], "commands": [],
                 "log": "javascript:alert(1)"}]}
    (tmp_path / "checks.json").write_text(json.dumps(data))
    (tmp_path / "checkpatch.log").write_text("log\n")
    result = lab("report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    page = Page((tmp_path / "report.html").read_text())
    assert page.scripts == [webpage.SCRIPT] and not page.tags("img")
    text = page.all_text
    assert f"{h}:3" in text and "1 finding" in text and "Exit code 1" in text
    assert "./checkpatch.log" in {a["href"] for a in page.tags("a")}
    assert "javascript:alert(1) (missing)" in text
    (tmp_path / "checks.json").write_text('{"checks": 5}')
    assert "not a checks.json: expected an object with a list of checks" in refused(
        tmp_path, "report", str(tmp_path))


def test_an_interrupted_run_says_so_and_its_exit_code(tmp_path):
    done = CellResult(Cell("aarch64", "nokpti", "a", ()), "s", boots=[BootResult(
        0, BootFacts("6.1", "tcg", "", 0.5, None), [StepResult("x", "run", 0, Status.PASS)])])
    never = CellResult(Cell("aarch64", "nokpti", "b", ()), "s", interrupted="SIGINT",
                       error="not run: interrupted by SIGINT")
    run = RunResult([{"name": "s"}], HostFacts(), 1, "wallclock", [done, never],
                    interrupted="SIGINT")
    assert htmlreport.exit_code(run)[0] == 130
    text = Page(_page(tmp_path, run)).all_text
    assert "Exit code 130: SIGINT stopped the run" in text and "1 interrupted" in text
    assert "not run: interrupted by SIGINT" in text
    run.interrupted = "NOSUCHSIGNAL"                  # a results.json anyone wrote
    assert htmlreport.exit_code(run)[0] == 2


def test_against_a_baseline_a_change_on_the_same_kernel_says_so(tmp_path):
    a = synthetic_run(tmp_path / "a", cells=2, tests=20, fail=0.0, seed=8)
    synthetic_run(tmp_path / "b", cells=2, tests=20, fail=0.3, seed=8)
    result = lab("report", str(tmp_path / "b"), "--baseline", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "b" / "report.html").read_text()
    assert a.cells[0].kernel["hash"] and "<b>regression</b> <span class=\"badge b-flaky\"" in html
