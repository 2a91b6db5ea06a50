"""Everything the user sees: tables, progress, JSON. The only rich import."""

from __future__ import annotations

import contextlib
import re
import statistics
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lab.analysis import stats
from lab.analysis.compare import Comparison, RunComparison
from lab.analysis.testdiff import CellDiff
from lab.app.checks import CheckResult, CheckRun
from lab.core.model import AccelStatus
from lab.core.results import CellResult, RunResult, Status, TestResult
from lab.host import cache
from lab.host.command import WARNING
from lab.parse import consolelog, faults

# Not on a terminal (CI logs, files): wide enough for the tables. Strings are
# printed as they are, never read as rich markup or :emoji: codes: names, paths
# and messages come from users, and a '[' in one must neither crash nor restyle
# the output. Styles are given as Text only.
out = Console(highlight=False, markup=False, emoji=False,
              width=None if sys.stdout.isatty() else 180)
STATUS_STYLE = {"pass": "green", "fail": "bold red", "error": "bold magenta", "skip": "yellow",
                "interrupted": "bold yellow"}
err = Console(stderr=True, highlight=False, markup=False, emoji=False,
              width=None if sys.stderr.isatty() else 180)


def error(message: str) -> None:
    err.print(Text(f"lab: error: {message}", style="bold red"), soft_wrap=True)


def warning(message: str) -> None:
    err.print(Text(f"lab: warning: {message}", style="bold yellow"), soft_wrap=True)


def print_json(data) -> None:
    sys.stdout.write(cache.dumps(data) + "\n")


@contextlib.contextmanager
def build_progress(label: str, done: str = "built") -> Iterator:
    """A one-line live display of a build's current phase; yields the callback.
    At the end it says `label done (seconds)`, if any phase was reported."""
    started = time.monotonic()
    state = {"phase": "start", "detail": ""}

    def render() -> Text:
        return Text.assemble((f"{label} ", "bold"), (f"[{state['phase']}] ", "cyan"),
                             (f"{time.monotonic() - started:5.0f}s ", "dim"),
                             state["detail"][:80])

    def progress(phase: str, detail: str) -> None:
        if phase == WARNING:        # kept on screen, above the live line
            warning(f"{label}: {detail}")
        state.update(phase=phase, detail=detail)
        live.update(render())

    with Live(render(), console=err, refresh_per_second=4, transient=True) as live:
        yield progress
    if state["phase"] != "start":   # say so only when something was built
        err.print(Text.assemble((f"{label} ", "bold"), (f"{done} ", "green"),
                                f"({time.monotonic() - started:.1f}s)"))


def kernels_table(builds) -> None:
    table = Table(title="built kernels")
    for col in ("arch", "kernel", "hash", "release", "source", "image", "initramfs"):
        table.add_column(col)
    for b in builds:
        table.add_row(b.arch, b.kernel, b.hash[:12], b.release, b.source or "-", str(b.image),
                      str(b.initramfs or "-"))
    out.print(table)


def cache_table(units, bound: int) -> None:
    """`lab cache`: every unit, least recently used first, and the total."""
    table = Table(title=f"lab cache (bound {bound / 2**30:.1f} GiB: lab cache gc)")
    for col in ("entry", "MiB", "last use", "in use"):
        table.add_column(col)
    for u in units:
        table.add_row(u.name, f"{u.size / 2**20:.1f}",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(u.last_use)),
                      "yes" if u.held else "")
    out.print(table)
    out.print(f"total: {sum(u.size for u in units) / 2**30:.2f} GiB in {len(units)} entries")


def cache_gc(removed, left: int, bound: int) -> None:
    for u in removed:
        out.print(f"removed {u.name} ({u.size / 2**20:.1f} MiB)")
    verdict = "within" if left <= bound else "still over (the rest is in use)"
    out.print(f"cache: {left / 2**30:.2f} GiB, {verdict} the bound of {bound / 2**30:.2f} GiB")


def doctor_table(rows: list[tuple[str, str, str]], accel: AccelStatus) -> None:
    """rows: (what, package, what is wrong: "" when nothing, "missing", a probe's line)."""
    table = Table(title="lab doctor: host dependencies")
    table.add_column("needed")
    table.add_column("Debian package")
    table.add_column("status")
    for what, package, why in rows:
        table.add_row(what, package, Text("ok", "green") if not why
                      else Text("MISSING", "bold red") if why == "missing"
                      else Text(f"FAILED: {why}", "bold red"))
    out.print(table)
    out.print(Text.assemble("accelerator: ", (accel.accel, "bold"), f" — {accel.reason}"))


def shell_banner(guest: str, facts, logdir: Path) -> None:
    """lab shell's first line: which guest, how it booted, how to leave."""
    err.print(Text.assemble(
        (guest, "bold"), f" {facts.kernel_release}, {facts.accel}, booted in "
        f"{facts.boot_s:.2f} s, KPTI {'active' if facts.kpti_active else 'inactive'}. "
        "Leave with ", ("Ctrl-]", "bold"), f". Logs: {logdir}"))


# ---------------------------------------------------------------- lab run

class CellsLive:
    """A live table of cells (phase, status, elapsed) while a run goes on, at a
    terminal. Elsewhere (a CI log, a pipe) no table is drawn: one plain line per
    cell as it ends."""

    def __init__(self):
        self._rows: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._drawn = err.is_terminal
        self._live = Live(self._render(), console=err, refresh_per_second=4,
                          transient=False) if self._drawn else None

    def _render(self) -> Table:
        table = Table(title="cells", expand=False)
        for col in ("cell", "status", "elapsed", "phase"):
            table.add_column(col)
        for cid, row in self._rows.items():
            style = STATUS_STYLE.get(row["status"], "yellow")
            end = row.get("end") or time.monotonic()
            table.add_row(cid, Text(row["status"], style), f"{end - row['start']:.1f}s",
                          row["phase"][:70])
        return table

    def event(self, cell, phase: str = "", status: str = "") -> None:
        with self._lock:
            row = self._rows.setdefault(f"{cell.id}", {"start": time.monotonic(),
                                                       "status": "running", "phase": ""})
            row["phase"] = phase or row["phase"]
            if status:
                row["status"], row["end"] = status, time.monotonic()
                if self._live is None:
                    err.print(Text(f"cell {cell.id}: {status} "
                                   f"({row['end'] - row['start']:.1f} s)"), soft_wrap=True)
            if self._live is not None:
                self._live.update(self._render())

    def __enter__(self):
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.__exit__(*exc)


def write_results(results: RunResult, out: Path) -> None:
    """results.json and junit.xml (each cell wrote its result.json when it ended)."""
    cache.write_json(out / "results.json", results.to_json())   # atomic: never half-written
    (out / "junit.xml").write_text(junit(results))


def _cases(cell: CellResult) -> list[tuple[str, Status, float, str]]:
    """A cell's JUnit test cases: (name, status, seconds, message). An interrupted
    cell's boot case is an error that says so."""
    if cell.interrupted:
        boot = ("boot", Status.ERROR, f"interrupted by {cell.interrupted}")
    else:
        boot = ("boot", Status.ERROR if cell.failed_to_boot else Status.PASS,
                cell.error_message)
    cases = [(boot[0], boot[1], sum(cell.boot_times), boot[2])]
    for s in cell.steps:
        tag = f" [boot {s.boot}]" if s.boot else ""
        # A step that reports tests is its tests (one case each, `suite.test`); it is a
        # case itself only when it reported none, or erred (a crash ended it).
        if not s.tests or s.status is Status.ERROR:
            cases.append((s.name + tag, s.status, s.duration_s, s.message))
        cases += [(t.name + tag, t.status, 0.0, _test_message(t)) for t in s.tests]
    return cases


def _test_message(t: TestResult) -> str:
    """A test's message, with the kernel faults seen while it ran."""
    said = [t.message] + [f"kernel {f.kind}: {f.text}" for f in t.faults]
    return "\n".join(x for x in said if x)


#: What XML 1.0 cannot hold: control characters (a guest's colours and bells), surrogates.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """Text as XML can carry it: characters it cannot hold are shown as \\xNN."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


#: A JUnit test case's child element for a status, and its suite's counter.
JUNIT_TAGS = {Status.FAIL: ("failure", "failures"), Status.ERROR: ("error", "errors"),
              Status.SKIP: ("skipped", "skipped")}


#: One JUnit test case: (classname, name, status, seconds, message, text).
Case = tuple[str, str, Status, float, str, str]


def junit_xml(suites: dict[str, list[Case]]) -> str:
    """JUnit XML, the lab's one writer of it: a testsuite per name, its cases in order,
    with their counts and time; every text as XML can carry it."""
    root = ET.Element("testsuites", name="lab")
    for name, cases in suites.items():
        suite = ET.SubElement(root, "testsuite", name=_xml_text(name))
        counts = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
        for classname, case_name, status, seconds, message, text in cases:
            case = ET.SubElement(suite, "testcase", classname=_xml_text(classname),
                                 name=_xml_text(case_name), time=f"{seconds:.3f}")
            if status in JUNIT_TAGS:
                tag, counter = JUNIT_TAGS[status]
                counts[counter] += 1
                ET.SubElement(case, tag, message=_xml_text(message)[:500]).text = _xml_text(text)
        for k, v in counts.items():
            suite.set(k, str(v))
        suite.set("time", f"{sum(c[3] for c in cases):.3f}")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def junit(results: RunResult) -> str:
    """A testsuite per scenario, a testcase per cell's boot and step (or test)."""
    suites: dict[str, list[Case]] = {}
    for cell in results.cells:
        for name, status, seconds, message in _cases(cell):
            if status is Status.SKIP and not message:
                message = "not run: an earlier step failed or errored"
            suites.setdefault(cell.scenario, []).append(
                (f"{cell.scenario}.{cell.id}", name, status, seconds, message, message))
    return junit_xml(suites)


def _median(values: list[float]) -> str:
    return _num(statistics.median(values))


def _cell_metrics(c: CellResult) -> str:
    return ", ".join(f"{k}={_median(v)} {c.units.get(k, '')}".rstrip()
                     for k, v in c.metrics.items() if v)


def run_summary(results: RunResult, outdir: Path) -> None:
    """The cells, and their metrics. At a terminal, tables; elsewhere plain text, one
    line per row."""
    title = (f"lab run: {', '.join(s['name'] for s in results.scenarios)}  "
             f"({results.duration_s:.1f} s, -j{results.jobs}, {results.timing})")
    rows = []
    for c in results.cells:
        boots = c.boot_times
        rows.append((f"{c.scenario}/{c.id}", c.status.value, c.accel or "-",
                     str(c.kpti_active).lower() if c.kpti_active is not None else "-",
                     f"{statistics.median(boots):.2f}" if boots else "-", c.boot_mode or "-",
                     _cell_metrics(c)))
    if not out.is_terminal:
        out.print(Text(title), soft_wrap=True)
        for cid, status, accel, kpti, boot_s, mode, metrics in rows:
            out.print(Text(f"cell {cid}: {status}, {accel}, KPTI active {kpti}, boot {boot_s} s "
                           f"({mode})" + (f"; {metrics}" if metrics else "")), soft_wrap=True)
    else:
        table = Table(title=title)
        for col in ("cell", "status", "accel", "KPTI active", "boot s", "boot",
                    "metrics (median)"):
            table.add_column(col)
        for row in rows:
            table.add_row(Text(row[0]), Text(row[1], STATUS_STYLE[Status(row[1])]),
                          *row[2:6], Text(row[6]))
        out.print(table)
    _metrics_table(results)


def _metrics_table(results: RunResult) -> None:
    rows = [(c, k, v) for c in results.cells for k, v in c.metrics.items() if v]
    if not rows:
        return
    if not out.is_terminal:
        out.print("metrics (n, median, min, max):")
        for c, k, v in rows:
            out.print(Text(f"metric {c.scenario}/{c.id} {k}: n={len(v)}, median {_median(v)}, "
                           f"min {_num(min(v))}, max {_num(max(v))} {c.units.get(k, '')}"
                           .rstrip()), soft_wrap=True)
        return
    table = Table(title="metrics")
    for col in ("cell", "metric", "n", "median", "min", "max", "unit"):
        table.add_column(col, justify="right" if col in ("n", "median", "min", "max") else "left")
    for c, k, v in rows:
        table.add_row(Text(f"{c.scenario}/{c.id}"), k, str(len(v)), _median(v), _num(min(v)),
                      _num(max(v)), c.units.get(k, ""))
    out.print(table)


#: Failures the terminal lists at the end of a run; the page has every one.
MAX_FAILURE_LINES = 30


def run_end(results: RunResult, outdir: Path, page: Path | None, plans: list,
            failures: list | None = None) -> None:
    """What a run ends with: its failures (one line each), the verdicts of the
    comparisons its scenarios name, and where the results and the page are.
    failures: htmlreport.failures(results) (None: not listed here)."""
    if failures:
        _failure_lines(failures)
    for plan in plans:
        verdict_table(plan)
    said = f"results: {outdir}/results.json and junit.xml; logs per cell under {outdir}"
    out.print(Text(said), soft_wrap=True)
    if page is not None:
        wrote_report(page)


def _failure_lines(failures: list) -> None:
    out.print(Text(f"failures ({len(failures)}):", "bold red"))
    for f in failures[:MAX_FAILURE_LINES]:
        r = f.first
        boots = [x.boot.index for x in f.rows if x.boot]
        where = f" in boot {', '.join(map(str, boots))}" if len(f.test.rows) > 1 else ""
        line = next((x.strip() for x in r.message.splitlines() if x.strip()), "")
        out.print(Text.assemble((f"{r.status.value.upper()} ", STATUS_STYLE[r.status]),
                                f"{r.cell.scenario}/{r.cell.id}: {r.kind} '{r.name}'{where}: ",
                                line[:300]), soft_wrap=True)
    if len(failures) > MAX_FAILURE_LINES:
        out.print(f"... and {len(failures) - MAX_FAILURE_LINES} more (every one is in the report)")


def verdict_table(plan) -> None:
    """One scenario's compare: the verdict per cell and metric (and its tests'
    regressions and fixes); plain lines off a terminal."""
    base = "=".join(plan.baseline)
    if plan.problem:
        out.print(Text(f"compare {plan.scenario} against {base}: not compared: {plan.problem}"),
                  soft_wrap=True)
        return
    for d in plan.tests:
        out.print(Text(f"compare {plan.scenario}: {d.other} against {d.baseline}: "
                       f"{len(d.regressions)} regression(s), {len(d.fixes)} fix(es)"
                       + "".join(f"; regression {ch.name}" for ch in d.regressions[:10])),
                  soft_wrap=True)
    if plan.comparison is None:
        return
    rows = [(m, r) for m, rs in plan.comparison.metrics.items() for r in rs if r.ratio]
    title = f"compare {plan.scenario}: each cell against {base} (±{plan.margin:.0%})"
    if not out.is_terminal:
        out.print(Text(title), soft_wrap=True)
        for m, r in rows:
            d = r.ratio
            out.print(Text(f"verdict {m} {r.result.cell.arch} {r.label}: {d.value:.3g}x "
                           f"(95% {d.ci[0]:.3g}-{d.ci[1]:.3g}) {d.verdict}, "
                           f"{d.boots[0]} boots against {d.boots[1]}"), soft_wrap=True)
    else:
        table = Table(title=title)
        for col in ("metric", "arch", "cell", "ratio", "95% CI", "boots", "verdict"):
            table.add_column(col, justify="right" if col in ("ratio", "95% CI") else "left")
        for m, r in rows:
            d = r.ratio
            table.add_row(m, r.result.cell.arch, Text(r.label), f"{d.value:.3g}x",
                          f"{d.ci[0]:.3g}–{d.ci[1]:.3g}", f"{d.boots[0]} vs {d.boots[1]}",
                          _verdict_text(d))
        out.print(table)
    for note in compare_notes(plan.comparison.flags)[:-1]:   # the boots note is in the page
        out.print(Text("note: ", "bold") + Text(note), soft_wrap=True)


def wrote_report(path: Path) -> None:
    """The line that names the page: a path a person can open."""
    size = path.stat().st_size
    out.print(Text(f"report: {path} ({size / 1024:,.0f} KiB; open it in a browser)"),
              soft_wrap=True)


#: The lines of the first failure's message the driver loop's verdict shows.
FIRST_LINES = 20


def driver_verdict(results: RunResult, outdir: Path) -> None:
    """The driver loop's last word: the verdict, where it failed, the kernel's faults and log."""
    said = {s["name"]: s.get("description", "") for s in results.scenarios}
    for c in results.cells:
        if c.status is Status.PASS:
            out.print(Text(f"PASS {c.id}: {said.get(c.scenario) or 'every step passed'}",
                           "bold green"))
            continue
        first = next((s for s in c.steps if s.status in (Status.FAIL, Status.ERROR)), None)
        where = f"step '{first.name}'" if first else "boot"
        out.print(Text(f"{c.status.value.upper()} {c.id}: first failure at {where}", "bold red"))
        if first is not None and first.message:   # why: a failed check, the kernel's report
            out.print(Text("\n".join(first.message.strip().splitlines()[:FIRST_LINES])),
                      soft_wrap=True)
        for fault in c.faults:
            out.print(Text(f"kernel {fault.kind}:", "bold red"))
            out.print("\n".join(faults.summarize(fault.text)))
        logs = [v for k, v in c.logs.items() if k.startswith("console")]
        console = Path(outdir) / logs[-1] if logs else None
        if console and console.is_file():
            kernel = [line for line in console.read_text(errors="replace").splitlines()
                      if consolelog.is_kernel(line)]
            out.print(Text(f"last kernel messages ({console}):", "bold"))
            out.print("\n".join(kernel[-15:]))

# ---------------------------------------------------------------- lab driver --check

#: How the checks table words each status.
CHECK_WORDS = {Status.PASS: "clean", Status.FAIL: "findings", Status.ERROR: "could not run",
               Status.SKIP: "not run"}


def _check_row(r: CheckResult) -> tuple:
    status = Text(f"{r.status.value} ({CHECK_WORDS[r.status]})", STATUS_STYLE[r.status])
    return (r.name, status, str(len(r.findings)), f"{r.duration_s:.1f}", Text(r.message or r.log))


def checks_table(run: CheckRun, outdir: Path) -> None:
    """lab driver --check: one row per check, then every finding, file:line first."""
    k = run.kernel
    table = Table(title=f"lab driver --check: {run.driver.name} against {k.arch}/{k.kernel} "
                        f"({k.release})")
    for col in ("check", "status", "findings", "s", "log / note"):
        table.add_column(col, justify="right" if col in ("findings", "s") else "left")
    for r in run.results:
        table.add_row(*_check_row(r))
    out.print(table)
    findings = [(r.name, f) for r in run.results for f in r.findings]
    if findings:
        found = Table(title="findings (files relative to the driver directory)")
        for col in ("check", "where", "severity", "type", "message"):
            found.add_column(col)
        for name, f in findings:
            found.add_row(name, Text(f.where), f.severity, f.type, Text(f.message))
        out.print(found)
    out.print(Text(f"{run.status.value.upper()}: results in {outdir}/checks.json and junit.xml, "
                   f"each check's log beside them; the kernel's scripts from {run.source}",
                   STATUS_STYLE[run.status]))


def checks_junit(run: CheckRun) -> str:
    """One test case per check, its findings in the failure's text."""
    classname = f"{run.driver.name}.{run.kernel.arch}-{run.kernel.kernel}"
    cases: list[Case] = []
    for r in run.results:
        said = ([r.message] if r.message else []) + [f.summary for f in r.findings]
        cases.append((classname, r.name, r.status, r.duration_s,
                      r.message or f"{len(r.findings)} finding(s)", "\n".join(said)))
    return junit_xml({f"driver-check {run.driver.name}": cases})


def write_checks(run: CheckRun, outdir: Path) -> None:
    """checks.json and junit.xml (the logs are already there)."""
    cache.write_json(outdir / "checks.json", run.to_json())
    (outdir / "junit.xml").write_text(checks_junit(run))


# ---------------------------------------------------------------- lab compare

TCG_NOTE = ("Emulation inflates the cost of KPTI: TCG flushes its software TLB on every "
            "address-space switch and has no PCID/ASID-tagged TLB, so KPTI's ratios here are "
            "many times what hardware shows. Read TCG ratios as direction, not magnitude.")
ICOUNT_NOTE = ("-icount shift=0 counts instructions, not time: it shows the extra instructions "
               "KPTI executes and hides the cost of TLB refills.")
BOOTS_NOTE = ("The boot is the unit: a cell's median is the geometric mean of its boots' "
              "medians, its interval comes from resampling boots and then samples within them, "
              "and a verdict needs two boots or more on each side (lab run --repeat). "
              "'between boots' is the share of one sample's variance that lies between boots: "
              "where it is large, more boots pay more than more samples per boot.")


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _verdict_text(d: stats.Difference) -> Text:
    style = {"higher": "bold", "lower": "bold", "equivalent": "green"}.get(d.verdict, "yellow")
    return Text(d.verdict + (" (1 boot)" if d.within_only else ""), style=style)


def compare_table(comparison: Comparison) -> None:
    for metric, rows in comparison.metrics.items():
        table = Table(title=f"{metric} ({comparison.units.get(metric, '')}), baseline "
                            f"{comparison.baseline}, margin ±{comparison.margin:.0%}")
        for col in ("arch", "cell", "accel", "timing", "boots", "n", "median", "IQR", "95% CI",
                    "between boots", "ratio", "ratio 95% CI", "verdict"):
            table.add_column(col, justify="right" if col not in ("arch", "cell", "verdict")
                             else "left")
        for r in rows:
            s, ratio = r.summary, r.ratio
            table.add_row(r.result.cell.arch, r.label + (" (baseline)" if r.is_baseline else ""),
                          r.result.accel, r.result.timing, str(r.estimate.boots), str(s.n),
                          _num(s.median), f"{_num(s.q1)}–{_num(s.q3)}",
                          f"{_num(s.ci[0])}–{_num(s.ci[1])}", _share(r.estimate.between),
                          f"{ratio.value:.2f}x" if ratio else "-",
                          f"{ratio.ci[0]:.2f}–{ratio.ci[1]:.2f}" if ratio else "-",
                          _verdict_text(ratio) if ratio else "")
        out.print(table)
        for r in rows:
            if r.ratio:
                out.print(Text("  " + r.sentence))
    for note in compare_notes(comparison.flags):
        out.print(Text("note: ", "bold") + Text(note))


def compare_notes(flags: list[str]) -> list[str]:
    return [{"tcg": TCG_NOTE, "icount": ICOUNT_NOTE}[flag] for flag in flags] + [BOOTS_NOTE]


def write_compare(comparison: Comparison, outdir: Path) -> None:
    data = dict(comparison.to_json(), notes=compare_notes(comparison.flags))
    _write_both(data, outdir, _panels(comparison))


def _panels(comparison: Comparison) -> list:
    return [(f"{metric}: ratio to {comparison.baseline}  [{_accels(rows)}]",
             f"{metric} ({comparison.units.get(metric, '')})",
             [_PlotRow(f"{r.result.cell.arch}\n{r.label}", r.estimate, r.is_baseline,
                       f"{r.ratio.value:.2f}x  ({r.ratio.verdict})" if r.ratio else "baseline")
              for r in rows])
            for metric, rows in comparison.metrics.items()]


def write_planned(plan, outdir: Path) -> None:
    """What a scenario's compare: made, as lab compare DIR writes it (compare.json and
    compare.png, testdiff.json), into the scenario's results directory; quietly (the
    run ends with the verdicts)."""
    if plan.tests:
        cache.write_json(outdir / "testdiff.json", {"cells": [d.to_json() for d in plan.tests]})
    if plan.comparison is not None:
        c = plan.comparison
        cache.write_json(outdir / "compare.json", dict(c.to_json(), notes=compare_notes(c.flags)))
        compare_plot(_panels(c), outdir / "compare.png")


def _accels(rows: list) -> str:
    return ", ".join(sorted({r.result.accel + "/" + r.result.timing for r in rows}))


def _write_both(data: dict, outdir: Path, panels: list) -> None:
    cache.write_json(outdir / "compare.json", data)
    compare_plot(panels, outdir / "compare.png")
    out.print(Text(f"wrote {outdir / 'compare.json'} and {outdir / 'compare.png'}"))


def compare_runs_table(c: RunComparison) -> None:
    """B against A, cell by cell, then the summary a patch's author reads."""
    table = Table(title=f"B: {c.b}  against  A: {c.a}  (margin ±{c.margin:.0%})")
    for col in ("cell", "metric", "A median", "boots", "B median", "boots", "B/A",
                "95% CI", "verdict"):
        table.add_column(col, justify="left" if col in ("cell", "metric", "verdict")
                         else "right")
    for p in c.rows:
        table.add_row(f"{p.scenario}/{p.id}", p.metric, _num(p.before.value),
                      str(p.before.boots), _num(p.after.value), str(p.after.boots),
                      f"{p.diff.value:.3f}x", f"{p.diff.ci[0]:.3f}–{p.diff.ci[1]:.3f}",
                      Text(p.change, style="bold" if p.change in ("regression", "improvement",
                                                                  "higher", "lower") else ""))
    out.print(table)
    for word in ("regression", "improvement", "higher", "lower", "equivalent", "inconclusive"):
        rows = [p for p in c.rows if p.change == word]
        if rows:
            out.print(Text(f"{word}: {len(rows)}", "bold"))
            for p in rows:
                out.print(Text("  " + p.sentence))
    for name, only in ((c.a, c.only_a), (c.b, c.only_b)):
        if only:
            out.print(Text(f"only in {name}: {', '.join(only)}", "bold"))
    for note in compare_notes(c.flags):
        out.print(Text("note: ", "bold") + Text(note))


def write_compare_runs(c: RunComparison, outdir: Path) -> None:
    data = dict(c.to_json(), notes=compare_notes(c.flags))
    panels = []
    for metric in dict.fromkeys(p.metric for p in c.rows):
        rows = [p for p in c.rows if p.metric == metric]
        items = []
        for p in rows:
            items += [_PlotRow(f"{p.id}\nA", p.before, True, ""),
                      _PlotRow(f"{p.id}\nB", p.after, False,
                               f"{p.diff.value:.3f}x  ({p.change})")]
        panels.append((f"{metric}: B against A", f"{metric} ({rows[0].unit})", items))
    _write_both(data, outdir, panels)


@dataclass(frozen=True)
class _PlotRow:
    label: str
    estimate: stats.Estimate
    grey: bool
    note: str


def _plain(text: str) -> str:
    """A user's string for matplotlib, which reads $...$ as math (and fails on bad math)."""
    return text.replace("$", r"\$")


def compare_plot(panels: list[tuple[str, str, list[_PlotRow]]], path: Path) -> None:
    """One panel per metric: per cell, each boot's median as a point and the
    two-level interval of the cell's value as a bar, so a reader sees whether the
    boots agree."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    height = sum(1.2 + 0.4 * max(len(rows), 3) for _, _, rows in panels) or 3.0
    fig, axes = plt.subplots(max(1, len(panels)), 1, figsize=(10, height), squeeze=False)
    for ax, (title, unit, rows) in zip(axes[:, 0], panels, strict=False):
        for i, r in enumerate(rows):
            e = r.estimate
            ax.scatter(e.boot_medians, [i] * len(e.boot_medians), s=22, alpha=0.7,
                       color="tab:gray" if r.grey else "tab:red", zorder=3)
            ax.plot(list(e.ci), [i, i], color="black", lw=3, alpha=0.6)
            ax.plot([e.value], [i], marker="|", ms=18, color="black")
            ax.annotate(_plain(f"{r.note}  [{e.boots} boot{'s' * (e.boots != 1)}]"),
                        (e.ci[1], i), xytext=(8, 4), textcoords="offset points", fontsize=8)
        ax.set_yticks(range(len(rows)), [_plain(r.label) for r in rows], fontsize=8)
        positive = all(v > 0 for r in rows for v in (*r.estimate.boot_medians, *r.estimate.ci))
        ax.set_xscale("log" if positive else "linear")   # counts can be 0
        ax.set_xlabel(_plain(f"{unit}{', log scale' if positive else ''}; dots: each boot's "
                             "median, bar: 95% interval (boots, then samples)"))
        ax.invert_yaxis()
        ax.set_title(_plain(title), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- tests (kselftest, kunit)

def test_counts(tests: list[TestResult]) -> str:
    by = {s: sum(t.status is s for t in tests) for s in Status}
    xfail = sum(t.message.startswith("xfail") for t in tests)
    return (f"{by[Status.PASS]} ok of {len(tests)}: {by[Status.FAIL]} fail, "
            f"{by[Status.ERROR]} error, {by[Status.SKIP]} skip"
            + (f" ({xfail} of them xfail)" if xfail else ""))


def _first_line(text: str, width: int = 110) -> str:
    line = next((x for x in text.splitlines() if x.strip()), "")
    return line if len(line) <= width else line[:width - 1] + "…"


def tests_table(results: RunResult, passed: bool = True) -> None:
    """The test rows of every cell (kselftest programs, KUnit cases), then a count
    per cell; without passed, only the rows that did not pass."""
    for c in results.cells:
        if not c.tests:
            continue
        shown = [t for t in c.tests if passed or t.status is not Status.PASS]
        table = Table(title=f"{c.scenario}/{c.id}")
        for col in ("test", "status", "faults", "message"):
            table.add_column(col)
        for t in shown:
            table.add_row(Text(t.name), Text(t.status.value, STATUS_STYLE[t.status]),
                          ", ".join(f.kind for f in t.faults) or "", Text(_first_line(t.message)))
        if shown:
            out.print(table)
        out.print(Text(f"{c.scenario}/{c.id}: {test_counts(c.tests)}", style="bold"))


def testdiff_table(diffs: list[CellDiff]) -> None:
    """Per cell against its baseline: regressions first, then fixes, changes, and tests
    only one side ran."""
    for d in diffs:
        out.print(Text(f"{d.arch}: {d.other} against {d.baseline}: {len(d.regressions)} "
                       f"regression(s), {len(d.fixes)} fix(es), {len(d.changed)} other "
                       f"change(s), {len(d.only_baseline) + len(d.only_other)} only in one, "
                       f"{d.unchanged} unchanged", style="bold"))
        if not (d.regressions or d.fixes or d.changed or d.only_baseline or d.only_other):
            continue
        table = Table()
        for col in ("change", "test", "baseline", "this"):
            table.add_column(col)
        for what, changes in (("regression", d.regressions), ("fix", d.fixes),
                              ("changed", d.changed)):
            for ch in changes:
                table.add_row(Text(what, "bold red" if what == "regression" else ""),
                              Text(ch.name), ch.baseline.value, ch.other.value)
        for name in d.only_baseline:
            table.add_row("only in baseline", Text(name), "ran", "-")
        for name in d.only_other:
            table.add_row("only in this", Text(name), "-", "ran")
        out.print(table)


def write_testdiff(diffs: list[CellDiff], outdir: Path) -> None:
    path = outdir / "testdiff.json"
    cache.write_json(path, {"cells": [d.to_json() for d in diffs]})
    out.print(Text(f"wrote {path}"))


# ---------------------------------------------------------------- lab bisect

_BISECT_ROW = "{:<16} {:<12} {:>8} {:>6} {:>12}  {:<24} {}"


def bisect_header(metric: str | None) -> None:
    out.print(Text(_BISECT_ROW.format("step", "commit", "compiled", "boots",
                                      "median" if metric else "failed", "verdict", "subject")),
              soft_wrap=True)


def bisect_step(commit: str, subject: str, kind: str, compiled: int | None, boots: int,
                runs: int, median: float | None, verdict: str, note: str) -> None:
    """One step of lab bisect, as it ends: kind, commit, objects compiled, boots (or
    runs), the median (a metric) or failures (pass/fail), its verdict, and why."""
    shown = (f"{median:.6g}" if median is not None else "") if not runs else f"{runs} runs"
    out.print(Text(_BISECT_ROW.format(kind[:16], commit, "-" if compiled is None else compiled,
                                      boots or runs or "-", shown, verdict[:24],
                                      subject[:60])), soft_wrap=True)
    if note and verdict not in ("good", "bad"):
        out.print(Text(f"{'':16} {note}", "dim"), soft_wrap=True)


def bisect_plot(found, metric: str, path: Path) -> None:
    """A strip plot of every measured step against the two ends (a metric only)."""
    rows = [_PlotRow(f"{s.kind}\n{s.label[:12]}", stats.estimate(list(s.samples)),
                     s.measured.outcome.value != "bad", s.measured.outcome.value)
            for s in found.steps if s.measured and len(s.samples) >= 1]
    if rows and found.ends is not None:
        compare_plot([(f"lab bisect: every step's boots ({len(rows)} steps)", metric, rows)],
                     path)


def bisect_needs(needs: dict) -> None:
    """What Kconfig makes each option of a --config bisection move with."""
    for option, deps in sorted(needs.items()):
        if deps:
            err.print(f"{option} needs {', '.join(sorted(deps))}: they move together")


def bisect_config_end(result, outdir: Path) -> None:
    """lab bisect --config's answer, and where everything is."""
    out.print(Text(f"lab bisect --config: {result.conclusion()} ({len(result.steps)} steps)",
                   "bold"), soft_wrap=True)
    _bisect_files(outdir)


def _bisect_files(outdir: Path) -> None:
    for name in ("bisect.json", "bisect.log", "bisect.png", "reproduce.sh"):
        if (outdir / name).exists():
            out.print(Text(f"  {outdir / name}"), soft_wrap=True)


def bisect_end(found, rng, outdir: Path) -> None:
    """The answer, whether its checks held, and where everything is."""
    search = found.search
    out.print(Text(f"lab bisect: {search.conclusion()}", "bold"), soft_wrap=True)
    if found.culprit:
        subject = rng.subject(found.culprit)
        c = found.confirmation
        out.print(Text(f"  {found.culprit[:12]} {subject}"), soft_wrap=True)
        checks = {k: v for k, v in c.items() if k in ("parent_held", "revert_held", "held")}
        out.print(Text(f"  checked: {'confirmed' if found.confirmed else 'NOT confirmed'} "
                       f"({', '.join(f'{k}={v}' for k, v in checks.items())}; revert "
                       f"{c.get('revert', '-')})"), soft_wrap=True)
    _bisect_files(outdir)
