"""report.html: a run's results as one page a person would rather open than grep.

The one writer of report.html. It reads what a run left in its directory
(results.json of any format, the logs it names, compare.json) and writes one
self-contained file (webpage.py: nothing fetched, CSP, escaping). Failures come
first, expanded; passes are collapsed. The page stays bounded whatever the run:
logs are excerpted (a tail of each, read with a bound) and linked, never inlined;
at most MAX_DETAILED failures get their files read, and past MAX_TEST_ROWS the
passing tests are counted, not listed.

Words used here: a row is one thing that ran in one boot and has a status (a boot
that failed, a step, or a test a step reported); a test is a row's name in its
cell, over the cell's boots. A test is flaky only when its boots, which share the
kernel, the command line and the inputs, disagree on pass and fail.
"""

from __future__ import annotations

import re
import shlex
import signal
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lab.analysis import compare as comparing
from lab.analysis import testdiff
from lab.app import webpage as w
from lab.app.plots import compare_svg, timeline
from lab.app.report import compare_notes
from lab.core import inputs
from lab.core.errors import UserError
from lab.core.results import BootResult, CellResult, RunResult, Status, StepResult, TestResult
from lab.host import cache
from lab.parse import consolelog, faults

FILE = "report.html"
#: Failures shown in full, their logs read; the rest get one line each.
MAX_DETAILED = 100
#: Test rows listed in the page; past that, passing ones are only counted.
MAX_TEST_ROWS = 20_000
#: How much of a log a failure shows: the tail read, and the lines kept of it.
OUTPUT_TAIL_BYTES, OUTPUT_LINES = 16 * 1024, 40
KERNEL_TAIL_BYTES, KERNEL_LINES = 128 * 1024, 20
FAULT_LINES = 40
#: compare.json is small; a larger one is not the lab's.
MAX_COMPARE_JSON = 16 * 1024 * 1024

SYMBOL = {Status.PASS: "✔", Status.FAIL: "✘", Status.ERROR: "⚠", Status.SKIP: "○",
          Status.INTERRUPTED: "⏸"}
WORDS = {Status.PASS: "pass", Status.FAIL: "fail", Status.ERROR: "error", Status.SKIP: "skip",
         Status.INTERRUPTED: "interrupted"}
EMULATION = ("Emulation is not hardware: under TCG every address-space switch flushes QEMU's "
             "software TLB, so costs such as KPTI's are inflated many times over; read ratios "
             "as direction, not magnitude.")


# ---------------------------------------------------------------- rows and tests

@dataclass(frozen=True)
class Row:
    """One thing that ran in one boot: a boot that failed, a step, or a test."""

    cell: CellResult
    boot: BootResult | None
    kind: str                 # "cell" (it never ran), "boot", "step", "test"
    name: str
    status: Status
    message: str = ""
    step: StepResult | None = None
    test: TestResult | None = None

    @property
    def xfail(self) -> bool:
        return self.status is Status.SKIP and self.message.startswith("xfail")

    @property
    def shown_status(self) -> str:
        return "xfail" if self.xfail else WORDS[self.status]


def rows_of(cell: CellResult) -> list[Row]:
    """A cell's rows in the order they ran."""
    if not cell.boots:
        status = Status.INTERRUPTED if cell.interrupted else Status.ERROR
        return [Row(cell, None, "cell", "the cell", status,
                    cell.error or f"interrupted by {cell.interrupted}")]
    out = []
    for b in cell.boots:
        if b.failed_to_boot:
            status = Status.INTERRUPTED if cell.interrupted else Status.ERROR
            out.append(Row(cell, b, "boot", "boot", status, b.error))
        for s in b.steps:
            if not s.tests or s.status is Status.ERROR:
                out.append(Row(cell, b, "step", s.name, s.status, s.message, s))
            out += [Row(cell, b, "test", t.name, t.status, t.message, s, t) for t in s.tests]
    return out


@dataclass
class Test:
    """A row's name in its cell, over the cell's boots."""

    cell: CellResult
    name: str
    kind: str
    rows: list[Row] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return Status.worst(r.status for r in self.rows) if any(
            r.status is not Status.SKIP for r in self.rows) else Status.SKIP

    @property
    def flaky(self) -> bool:
        """Pass and fail among its boots: the same kernel, command line and inputs."""
        seen = {r.status for r in self.rows}
        return Status.PASS in seen and Status.FAIL in seen

    @property
    def xfail(self) -> bool:
        return all(r.xfail for r in self.rows)

    @property
    def shown_status(self) -> str:
        return "flaky" if self.flaky else "xfail" if self.xfail else WORDS[self.status]


def tests_of(cell: CellResult) -> list[Test]:
    found: dict[tuple[str, str], Test] = {}
    for r in rows_of(cell):
        kind = "test" if r.kind == "test" else "step"
        found.setdefault((kind, r.name), Test(cell, r.name, kind)).rows.append(r)
    return list(found.values())


def outcomes(rows: Iterable[Row]) -> str:
    """A test's status in each boot, as symbols: ✔✔✘✔."""
    return "".join(f'<span class="o-{r.shown_status}" title="boot '
                   f'{r.boot.index if r.boot else 0}: {r.shown_status}">'
                   f"{SYMBOL[r.status]}</span>" for r in rows)


@dataclass
class Counts:
    errors: int = 0
    failures: int = 0
    passes: int = 0
    skips: int = 0
    xfails: int = 0
    interrupted: int = 0
    flaky: int = 0

    @classmethod
    def of(cls, run: RunResult) -> Counts:
        c = cls()
        for cell in run.cells:
            for r in rows_of(cell):
                if r.xfail:
                    c.xfails += 1
                else:
                    name = {Status.ERROR: "errors", Status.FAIL: "failures",
                            Status.PASS: "passes", Status.SKIP: "skips",
                            Status.INTERRUPTED: "interrupted"}[r.status]
                    setattr(c, name, getattr(c, name) + 1)
            c.flaky += sum(t.flaky for t in tests_of(cell))
        return c


# ---------------------------------------------------------------- what the page reads

@dataclass
class Source:
    """Everything a page is made of: a run, where its files are, where the page goes."""

    dir: Path
    results: RunResult
    page_dir: Path
    baseline: RunResult | None = None
    baseline_dir: Path | None = None
    #: The baseline of a `lab compare DIR --baseline KEY=VALUE` made in dir ("": none).
    compared: str = ""
    _tails: dict[tuple[Path, int], tuple[str, int] | None] = field(default_factory=dict)

    def tail(self, rel: str | None, limit: int) -> tuple[str, int] | None:
        """The last limit bytes of a file the results name (relative to dir), as text,
        and the file's size; None when it is not there (or not under dir)."""
        if not rel:
            return None
        path = self.dir / rel
        if (path, limit) not in self._tails:
            got = inputs.tail(path, limit, self.dir)
            self._tails[(path, limit)] = (w.decode(got[0]), got[1]) if got else None
        return self._tails[(path, limit)]

    def link(self, rel: str, label: object = None) -> str:
        shown = rel if label is None else label
        return w.link(self.dir / rel, shown, self.page_dir, self.dir)


def load(directory: Path, baseline: Path | None = None, page: Path | None = None) -> Source:
    """A results directory (results.json of any lab), and a baseline run's; UserError
    naming the file when one is missing or not a results.json."""
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory (lab report DIR: a results directory)")
    if not (directory / "results.json").exists():
        raise UserError(f"{directory}: no results.json (nor {CHECKS_FILE}) here: not the --out "
                        "directory of a lab run, kselftest, kunit or driver")
    results = comparing.load_results(directory)
    base = comparing.load_results(baseline) if baseline else None
    page_dir = (page or directory / FILE).absolute().parent
    return Source(directory.absolute(), results, page_dir, base,
                  baseline.absolute() if baseline else None, _compared(directory))


def _compared(directory: Path) -> str:
    """The baseline of the compare.json `lab compare DIR` left there ("" if none)."""
    got = inputs.tail(directory / "compare.json", MAX_COMPARE_JSON + 1, directory)
    if not got or got[1] > MAX_COMPARE_JSON:
        return ""
    try:
        data = inputs.strict_json(w.decode(got[0]))
    except (ValueError, RecursionError):
        return ""
    found = data.get("baseline") if isinstance(data, dict) else None
    return found if isinstance(found, str) and "=" in found else ""


def write(source: Source, out: Path | None = None) -> Path:
    """Renders the page and writes it atomically (default DIR/report.html)."""
    path = out or source.dir / FILE
    cache.write_text(path, render(source), mode=0o644)   # a page to share, as CI artifacts are
    return path


# ---------------------------------------------------------------- the page

#: The page's sections in order, with the words the table of contents gives them.
SECTIONS = (("baseline", "against the baseline"), ("failures", "failures"),
            ("matrix", "matrix"), ("comparisons", "comparisons"), ("tests", "tests"),
            ("cells", "cells"), ("timeline", "timeline"), ("files", "files"))


def render(src: Source) -> str:
    run = src.results
    counts = Counts.of(run)
    plans = comparing.planned(run, src.compared)
    sections = {"baseline": _against_baseline(src) if src.baseline is not None else "",
                "failures": _failures(src), "matrix": _matrix(src),
                "comparisons": _comparisons(src, plans), "tests": _tests(src),
                "cells": _cells(src), "timeline": timeline(run), "files": _files(src)}
    present = [(k, v) for k, v in SECTIONS if sections[k]]
    title = f"{_names(run)}: {_verdict(run, counts)}"
    return w.page(title, _header(src, counts, present) + _controls()
                  + "".join(sections[k] for k, _ in present))


def _names(run: RunResult) -> str:
    return ", ".join(str(s.get("name", "")) for s in run.scenarios) or "lab run"


def _verdict(run: RunResult, c: Counts) -> str:
    said = [f"{n} {word}{'s' * (n != 1)}" for n, word in (
        (c.errors, "infrastructure error"), (c.failures, "failure"),
        (c.interrupted, "interrupted"))
        if n]
    return ", ".join(said) if said else "every test passed" if c.passes else "nothing passed"


EXIT_MEANING = {
    0: "every cell passed",
    1: "a test failed (its cell ran; a step or a test did not pass)",
    2: "an infrastructure error: a guest panicked, hung or lost QEMU, a cell could not run, "
       "or the lab itself failed",
}


def exit_code(run: RunResult) -> tuple[int, str]:
    """The code lab run exits with for these results (the lab's one policy:
    commands.options.exit_code asks here), and what it means."""
    if run.interrupted:
        code = 128 + signal.Signals[run.interrupted].value if run.interrupted in \
            signal.Signals.__members__ else 2
        return code, f"{run.interrupted} stopped the run; unfinished cells say so"
    code = {Status.PASS: 0, Status.FAIL: 1}.get(run.status, 2)
    return code, EXIT_MEANING[code]


def _header(src: Source, c: Counts, present: list[tuple[str, str]]) -> str:
    run = src.results
    code, meaning = exit_code(run)
    status = "interrupted" if run.interrupted else WORDS[run.status]
    chips = [(c.errors, "infrastructure errors", "c-error"),
             (c.failures, "test failures", "c-fail"), (c.passes, "passes", "c-pass"),
             (c.skips, "skips", ""),
             (c.xfails, "expected failures", "c-xfail"), (c.flaky, "flaky tests", "c-flaky")]
    if c.interrupted:
        chips.append((c.interrupted, "interrupted", "c-int"))
    counts = "".join(w.el("li", f"<b>{n:,}</b> {w.text(what)}", cls) for n, what, cls in chips)
    head = (w.el("h1", w.text(f"{_names(run)}: {_verdict(run, c)}"))
            + w.el("p", f"Exit code <b>{code}</b>: {w.text(meaning)}.", "exit")
            + w.el("ul", counts, "counts") + _environment(src) + _xfails(run)
            + w.el("nav", "".join(f'<a href="#{k}">{w.text(v)}</a>' for k, v in present),
                   "toc"))
    return w.el("header", head, f"top st-{status}")


def _xfails(run: RunResult) -> str:
    rows = [r for cell in run.cells for r in rows_of(cell) if r.xfail]
    if not rows:
        return ""
    items = "".join(f"<li>{w.text(r.cell.id)}: <code>{w.text(r.name)}</code>: "
                    f"{w.text(_first_line(r.message), 300)}</li>" for r in rows[:500])
    more = f"<li>… and {len(rows) - 500:,} more</li>" if len(rows) > 500 else ""
    return w.el("details", w.el("summary", f"expected failures ({len(rows):,}) and why")
                + f"<ul>{items}{more}</ul>", "xfails")


def _controls() -> str:
    """Filters and the search box; hidden until the script shows them."""
    return ('<div id="controls" hidden><span class="muted">show</span>'
            '<button type="button" data-show="all" aria-pressed="true">everything</button>'
            '<button type="button" data-show="problems" aria-pressed="false" id="problems-only">'
            "problems only (hide passes and skips)</button>"
            '<input type="search" id="q" placeholder="filter rows by text" '
            'aria-label="filter rows by text"></div>')


def _environment(src: Source) -> str:
    """One line of where the run ran, the emulation note, and the rest collapsed."""
    run, h = src.results, src.results.host
    accels = sorted({c.accel for c in run.cells if c.accel}) or [h.accel_available or "?"]
    qemu = h.qemu.removeprefix("QEMU emulator version ") if h.qemu else "?"
    line = (f"{h.name or 'host ?'} ({h.cpu or '?'}, {h.cores or '?'} cores) · QEMU {qemu} · "
            f"{', '.join(accels)}, {run.timing} · lab {run.lab_version or '?'} · "
            f"{len(run.cells):,} cells, {sum(len(c.boots) for c in run.cells):,} boots in "
            f"{run.duration_s:,.1f} s")
    pairs = [("host", f"{h.name or '?'}: {h.cpu or '?'}, {h.cores or '?'} cores"),
             ("QEMU", h.qemu or "?"),
             ("accelerator", f"{', '.join(accels)} (the host offers {h.accel_available or '?'}: "
                             f"{h.accel_reason or 'no reason recorded'})"),
             ("timing", run.timing), ("lab", run.lab_version or "?"),
             ("run", f"{run.duration_s:,.1f} s, {_executor(run)}")]
    body = "".join(f"<dt>{w.text(k)}</dt><dd>{w.text(v)}</dd>" for k, v in pairs)
    note = w.el("p", w.text(EMULATION), "note") if "tcg" in accels else ""
    kernels = len({(c.cell.arch, c.cell.kernel, str(c.kernel.get("hash", "")))
                   for c in run.cells})
    more = w.el("details", w.el("summary", w.text(f"environment and the {kernels} kernel(s): "
                                                  "hashes, fragments, sources"))
                + w.el("dl", body, "kv") + _kernels(run), "env")
    return w.el("p", w.text(line), "envline") + note + more


def _executor(run: RunResult) -> str:
    e = run.executor
    where = (f"on the Dask cluster at {e.get('scheduler', '?')}" if e.get("kind") == "dask"
             else f"-j{run.jobs} on this host")
    order = run.schedule.get("order")
    seed = run.schedule.get("seed")
    return where + (f", boots {order}" if order else "") + (f" (seed {seed})" if seed else "")


def _kernels(run: RunResult) -> str:
    seen: dict[tuple, str] = {}
    for c in run.cells:
        k = c.kernel
        key = (c.cell.arch, c.cell.kernel, str(k.get("hash", "")))
        if key in seen:
            continue
        source = c.kernel_source
        frags = k.get("fragments") or []
        seen[key] = w.el("tr", "".join(w.el("td", x) for x in (
            w.text(c.cell.arch), w.text(c.cell.kernel),
            f"<code>{w.text(str(k.get('hash', ''))[:12] or '?')}</code>",
            w.text(c.kernel_release or "?"),
            w.text(", ".join(map(str, frags)) if isinstance(frags, list) else frags),
            w.text(source.get("describe") or source.get("path") or "?"),
            w.text(", ".join(f"{o}={v}" for o, v in c.config.items())))))
    return w.table(
        ("arch", "kernel", "hash", "release", "fragments", "source", "its options"),
        seen.values())


# ---------------------------------------------------------------- failures

@dataclass
class Failure:
    """The rows of one test of one cell that did not pass, over its boots."""

    test: Test
    rows: list[Row]

    @property
    def first(self) -> Row:
        return self.rows[0]


def failures(run: RunResult) -> list[Failure]:
    """Test failures, then errors, then what was interrupted; in run order within each."""
    found = []
    for wanted in (Status.FAIL, Status.ERROR, Status.INTERRUPTED):
        for cell in run.cells:
            for t in tests_of(cell):
                bad = [r for r in t.rows if r.status is wanted]
                if bad:
                    found.append(Failure(t, bad))
    return found


def _failures(src: Source) -> str:
    found = failures(src.results)
    if not found:
        return w.el("section", w.el("h2", "Failures") + w.el(
            "p", "None: every step and test that ran passed or was skipped.", "muted"),
            id="failures")
    fails = sum(f.first.status is Status.FAIL for f in found)
    head = w.el("h2", w.text(f"Failures ({fails:,} failing, {len(found) - fails:,} errors or "
                             "interrupted)"))
    items = [_failure(src, f, i < MAX_DETAILED) for i, f in enumerate(found)]
    note = "" if len(found) <= MAX_DETAILED else w.el(
        "p", w.text(f"The first {MAX_DETAILED} are shown in full; the other "
                    f"{len(found) - MAX_DETAILED:,} in one line each (their cells below link "
                    "every log)."), "note")
    return w.el("section", head + note + "".join(items), id="failures")


def _failure(src: Source, f: Failure, full: bool) -> str:
    r, t = f.first, f.test
    where = f"{r.cell.scenario} / {r.cell.id}"
    boots = ", ".join(str(x.boot.index) for x in f.rows if x.boot)
    of = f" in boot {boots}" if len(t.rows) == 1 else f" in boots {boots} ({len(f.rows)} of " \
                                                      f"{len(t.rows)})"
    summary = (f'<span class="badge b-{r.status.value}">{w.text(r.status.value)}</span> '
               f"{w.text(where)} · {w.text(r.kind)} <code>{w.text(r.name, 300)}</code>"
               f"{w.text(of if r.boot else '')}"
               + (' <span class="badge b-flaky">flaky</span>' if t.flaky else ""))
    body = _failure_body(src, r) if full else w.el(
        "p", w.text(_first_line(r.message), 400) + " " + _cell_link(r.cell))
    return w.el("details", w.el("summary", summary) + body,
                f"failure f st-{r.status.value}", open=full, data__st=r.status.value,
                id=w.anchor("fail", f"{where}/{r.kind}/{r.name}"))


def _failure_body(src: Source, r: Row) -> str:
    s = r.step
    facts = [("cell", _cell_link(r.cell))]
    if r.test is not None and s is not None:
        facts.append(("test", f"<code>{w.text(r.name)}</code> of step {w.text(s.name)} "
                              f"({w.text(s.kind)})"))
    elif s is not None:
        facts.append(("step", f"{w.text(s.name)} ({w.text(s.kind)})"))
    if s is not None:
        if s.command:
            facts.append(("command", f"<code>{w.text(s.command)}</code>"))
        if s.expected:
            facts.append(("expected", w.text(s.expected)))
        facts += [("exit code", w.text(s.exit_code if s.exit_code is not None else "none")),
                  ("duration", w.text(f"{s.duration_s:.2f} s"))]
    facts.append(("actual", f"<pre>{w.text(_actual(src, r) or '(no message)')}</pre>"))
    dl = w.el("dl", "".join(f"<dt>{w.text(k)}</dt><dd>{v}</dd>" for k, v in facts), "kv")
    return (dl + _fault_excerpts(r) + _output_excerpt(src, r) + _kernel_tail(src, r)
            + _reproduce(src, r))


#: Where a run step's message starts quoting its output (lab/scenario/steps/run.py).
_QUOTED_OUTPUT = re.compile(r"(^|; )output( \(last [^)]*\))?:\n")


def _actual(src: Source, r: Row) -> str:
    """A row's message, without the output it quotes when the page shows that output
    from its file anyway."""
    m = _QUOTED_OUTPUT.search(r.message)
    if m and r.test is None and r.step is not None and src.tail(r.step.output, 1) is not None:
        return r.message[:m.start()] + ("" if m.start() else "(the output is below)")
    return r.message


def _fault_excerpts(r: Row) -> str:
    found = list(r.test.faults) if r.test is not None else (list(r.boot.faults) if r.boot else [])
    parts = []
    for fault in found[:5]:
        lines = faults.summarize(fault.text)[:FAULT_LINES]
        parts.append(w.el("h4", w.text(f"kernel fault: {fault.kind}"
                                       + (" (fatal)" if fault.fatal else "")))
                     + f"<pre>{w.text(chr(10).join(lines))}</pre>")
    if len(found) > 5:
        parts.append(w.el("p", w.text(f"… and {len(found) - 5} more faults in this boot"),
                          "muted"))
    return "".join(parts)


def _output_excerpt(src: Source, r: Row) -> str:
    rel = r.step.output if r.step else None
    got = src.tail(rel, OUTPUT_TAIL_BYTES)
    if got is None or rel is None:
        return ""
    content, size = got
    lines = content.splitlines()
    if size > len(content.encode()):
        lines = lines[1:]   # the first line of a tail is cut
    if r.test is not None:
        lines = _around(lines, r.name.split(".")[-1]) or lines
    shown = lines[-OUTPUT_LINES:]
    head = f"output: the last {len(shown)} lines of {src.link(rel)}" \
           f" ({size:,} bytes)"
    return w.el("h4", head) + f"<pre>{w.text(chr(10).join(shown), 20_000)}</pre>"


def _around(lines: list[str], word: str, before: int = 12, after: int = 12) -> list[str]:
    """The lines around the last one that names word (a test's own part of an output)."""
    hits = [i for i, line in enumerate(lines) if word and word in line]
    if not hits:
        return []
    i = hits[-1]
    return lines[max(0, i - before):i + after]


def _kernel_tail(src: Source, r: Row) -> str:
    rel = r.boot.logs.get("console") if r.boot else None
    got = src.tail(rel, KERNEL_TAIL_BYTES)
    if got is None or rel is None:
        return ""
    kernel = consolelog.kernel_text(got[0].splitlines())[-KERNEL_LINES:]
    if not kernel:
        return ""
    head = f"kernel log: the last {len(kernel)} kernel lines of " \
           f"{src.link(rel)}"
    return w.el("h4", head) + f"<pre>{w.text(chr(10).join(kernel), 20_000)}</pre>"


def reproduce(run: RunResult, r: Row) -> list[str]:
    """Command lines that run this again: the step or test alone, then its cell."""
    c = r.cell.cell
    base = ["--arch", c.arch, "--kernel", c.kernel]
    cmdline = ["--cmdline", " ".join(c.cmdline_words)] if c.cmdline_words else []
    lines = []
    s = r.step
    if r.test is not None and s is not None and s.kind == "kselftest":
        target, _, test = r.name.partition(".")
        lines.append(shlex.join(["lab", "kselftest", *base, *cmdline,
                                 f"{target}:{test}" if test else target]))
    elif r.test is not None and s is not None and s.kind == "kunit":
        lines.append(shlex.join(["lab", "kunit", *base, *cmdline, r.name.split(".")[0]]))
    elif s is not None and s.kind == "run" and s.command:
        lines.append(shlex.join(["lab", "exec", *base, *cmdline, "--", "sh", "-c", s.command]))
    elif r.kind in ("boot", "cell"):
        lines.append(shlex.join(["lab", "exec", *base, *cmdline, "--cold", "--", "true"]))
    path = next((str(x.get("path", "")) for x in run.scenarios
                 if x.get("name") == r.cell.scenario and x.get("path")), "")
    if path:
        lines.append(shlex.join(["lab", "run", path, "--only", f"arch={c.arch}", "--only",
                                 f"kernel={c.kernel}", "--only", f"cmdline={c.cmdline}"]))
    return lines


def _reproduce(src: Source, r: Row) -> str:
    lines = reproduce(src.results, r)
    script = ""
    if r.boot and (console := r.boot.logs.get("console")):
        rel = str(Path(console).parent / "reproduce.sh")
        script = w.el("p", "QEMU's exact command line: " + src.link(rel), "muted")
    logs = " · ".join(src.link(v, k) for k, v in (r.boot.logs.items() if r.boot else ()))
    return (w.el("h4", "reproduce") + f"<pre class=\"repro\">{w.text(chr(10).join(lines))}</pre>"
            + w.el("p", w.text("lab exec runs the command alone in a guest of the same kernel "
                               "and command line (the scenario's files and sysctls are not on "
                               "that line); lab run --only runs the cell as it ran."), "muted")
            + script + (w.el("p", "logs: " + logs) if logs else ""))


def _cell_link(cell: CellResult) -> str:
    return (f'<a href="#{w.anchor("cell", f"{cell.scenario}/{cell.id}")}">'
            f"{w.text(cell.scenario)} / {w.text(cell.id)}</a>")


def _first_line(text: str) -> str:
    return next((x.strip() for x in str(text).splitlines() if x.strip()), "")


# ---------------------------------------------------------------- the matrix

def _matrix(src: Source) -> str:
    run = src.results
    parts, grids = [w.el("h2", "Matrix")], []
    for scenario in dict.fromkeys(c.scenario for c in run.cells):
        cells = [c for c in run.cells if c.scenario == scenario]
        cols = list(dict.fromkeys(c.cell.cmdline for c in cells))
        by_row: dict[tuple[str, str], dict[str, CellResult]] = {}
        for c in cells:
            by_row.setdefault((c.cell.arch, c.cell.kernel), {})[c.cell.cmdline] = c
        head = "".join(f"<th>{w.text(x, 120)}</th>" for x in ["arch / kernel \\ cmdline", *cols])
        body = "".join(
            f'<tr><th class="row">{w.text(arch, 60)} / {w.text(kernel, 120)}</th>'
            + "".join(_grid_cell(row.get(col)) for col in cols) + "</tr>"
            for (arch, kernel), row in by_row.items())
        grids.append(w.el("div", w.el("h3", w.text(scenario))
                          + f'<table class="grid"><thead><tr>{head}</tr></thead>'
                            f"<tbody>{body}</tbody></table>"))
    parts.append(w.el("div", "".join(grids), "grids") if grids
                 else w.el("p", "This run has no cells.", "muted"))
    return w.el("section", "".join(parts), id="matrix")


def _grid_cell(cell: CellResult | None) -> str:
    if cell is None:
        return '<td class="none" title="not in the matrix (excluded)"></td>'
    status = cell.status.value
    boots = "".join(f'<span class="o-{b.status.value}">{SYMBOL[b.status]}</span>'
                    for b in cell.boots)
    target = w.anchor("cell", f"{cell.scenario}/{cell.id}")
    return (f'<td class="st-{status}"><a href="#{target}" title="{w.attr(cell.id)}">'
            f"<b>{w.text(status)}</b><br><span class=\"o\">{boots}</span></a></td>")


# ---------------------------------------------------------------- comparisons

def _comparisons(src: Source, plans: list[comparing.Planned]) -> str:
    if not plans:
        return ""
    parts = [w.el("h2", "Comparisons")]
    for plan in plans:
        parts.append(w.el("h3", w.text(f"{plan.scenario}: against {'='.join(plan.baseline)}")))
        if plan.problem:
            parts.append(w.el("p", w.text(f"No comparison: {plan.problem}"), "note"))
            continue
        parts.append(_testdiffs(plan.tests))
        if plan.comparison is not None:
            for metric, rows in plan.comparison.metrics.items():
                unit = plan.comparison.units.get(metric, "")
                arches = list(dict.fromkeys(r.result.cell.arch for r in rows))
                plots = "".join(compare_svg(metric, unit, [r for r in rows
                                                           if r.result.cell.arch == arch])
                                for arch in arches)       # each arch on its own scale
                parts.append(w.el("h4", w.text(f"{metric} ({unit})" if unit else metric))
                             + plots + _compare_table(rows))
            for flag in plan.comparison.flags:
                parts.append(w.el("p", w.text(comparing_note(flag)), "note"))
    return w.el("section", "".join(parts), id="comparisons")


def comparing_note(flag: str) -> str:
    return compare_notes([flag])[0]


def _compare_table(rows: list[comparing.Row]) -> str:
    out = []
    for r in rows:
        e, d = r.estimate, r.ratio
        out.append("<tr>" + "".join([
            f"<td>{w.text(r.result.cell.arch)}</td>",
            f"<td>{w.text(r.label)}{' (baseline)' if r.is_baseline else ''}</td>",
            f'<td class="num" data-v="{e.boots}">{e.boots}</td>',
            f'<td class="num" data-v="{e.value:.6g}">{w.text(_num(e.value))}</td>',
            f'<td class="num">{w.text(_num(e.ci[0]))}–{w.text(_num(e.ci[1]))}</td>',
            f'<td class="num" data-v="{d.value:.6g}">{d.value:.3g}×</td>' if d
            else "<td></td>",
            f'<td class="num">{d.ci[0]:.3g}–{d.ci[1]:.3g}</td>' if d else "<td></td>",
            f"<td><b>{w.text(d.verdict)}</b></td>" if d else "<td>baseline</td>"]) + "</tr>")
    words = "".join(f"<li>{w.text(r.sentence)}</li>" for r in rows if r.ratio)
    return w.table(("arch", "cell", "boots", "median", "95% interval", "ratio", "ratio 95%",
                    "verdict"), out) + (f"<ul class=\"words\">{words}</ul>" if words else "")


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _testdiffs(diffs: list[testdiff.CellDiff]) -> str:
    if not diffs:
        return ""
    rows = []
    for d in diffs:
        for what, changes in (("regression", d.regressions), ("fix", d.fixes),
                              ("changed", d.changed)):
            rows += [f'<tr class="f" data-st="{"fail" if what == "regression" else "pass"}">'
                     f"<td><b>{w.text(what)}</b></td><td>{w.text(d.other)}</td>"
                     f"<td><code>{w.text(ch.name)}</code></td><td>{w.text(ch.baseline.value)}"
                     f"</td><td>{w.text(ch.other.value)}</td></tr>" for ch in changes]
        rows += [f'<tr class="f" data-st="skip"><td>only in the baseline</td>'
                 f"<td>{w.text(d.other)}</td><td><code>{w.text(n)}</code></td><td>ran</td>"
                 f"<td>-</td></tr>" for n in d.only_baseline]
        rows += [f'<tr class="f" data-st="skip"><td>only in this cell</td>'
                 f"<td>{w.text(d.other)}</td><td><code>{w.text(n)}</code></td><td>-</td>"
                 f"<td>ran</td></tr>" for n in d.only_other]
    said = "".join(f"<li>{w.text(d.other)} against {w.text(d.baseline)}: "
                   f"<b>{len(d.regressions)} regression(s)</b>, {len(d.fixes)} fix(es), "
                   f"{d.unchanged} unchanged</li>" for d in diffs)
    return (f'<ul class="words">{said}</ul>'
            + (w.table(("change", "cell", "test", "baseline", "this"), rows) if rows else ""))


# ---------------------------------------------------------------- against a baseline run

def _against_baseline(src: Source) -> str:
    assert src.baseline is not None
    d = testdiff.diff_runs(src.baseline, src.results)
    parts = [w.el("h2", w.text(f"Against {src.baseline_dir}: {d.regressions} regression(s), "
                               f"{d.fixes} fix(es)"))]
    same = _same_kernel(src.baseline, src.results)
    rows = []
    for what, st in (("regression", "fail"), ("fix", "pass"), ("changed", "skip")):
        for cd in d.cells:
            changes = {"regression": cd.regressions, "fix": cd.fixes,
                       "changed": cd.changed}[what]
            note = (' <span class="badge b-flaky" title="the same kernel (by hash) and '
                    'command line in both runs: the same test changed its outcome on the '
                    'same kernel, so it is flaky or its scenario changed">same kernel</span>'
                    if cd.other in same else "")
            rows += [f'<tr class="f" data-st="{st}"><td><b>{w.text(what)}</b>{note}</td>'
                     f"<td>{w.text(cd.other)}</td><td><code>{w.text(ch.name)}</code></td>"
                     f"<td>{w.text(ch.baseline.value)}</td><td>{w.text(ch.other.value)}</td>"
                     "</tr>" for ch in changes]
    for cd in d.cells:
        rows += [f'<tr class="f" data-st="skip"><td>only in the baseline</td><td>'
                 f"{w.text(cd.other)}</td><td><code>{w.text(n)}</code></td><td>ran</td>"
                 "<td>-</td></tr>" for n in cd.only_baseline]
        rows += [f'<tr class="f" data-st="skip"><td>only in this run</td><td>'
                 f"{w.text(cd.other)}</td><td><code>{w.text(n)}</code></td><td>-</td>"
                 "<td>ran</td></tr>" for n in cd.only_other]
    for name, only in (("only in the baseline", d.only_a), ("only in this run", d.only_b)):
        rows += [f'<tr class="f" data-st="skip"><td>{w.text(name)}</td><td>{w.text(k)}</td>'
                 "<td>(the whole cell)</td><td></td><td></td></tr>" for k in only]
    parts.append(w.table(("change", "cell", "test or step", "baseline", "this run"), rows)
                 if rows else w.el("p", "No test changed its outcome.", "muted"))
    parts.append(_metrics_against(src))
    return w.el("section", "".join(parts), id="baseline")


def _same_kernel(a: RunResult, b: RunResult) -> set[str]:
    """The cells ("scenario/id") both runs booted on the same kernel (by its hash) and
    command line: there, a test that changed its outcome did so on the same kernel."""
    kernels = {f"{c.scenario}/{c.id}": (c.kernel.get("hash"), c.cell.cmdline_words)
               for c in a.cells}
    return {k for c in b.cells if (k := f"{c.scenario}/{c.id}") in kernels
            and c.kernel.get("hash") and kernels[k] == (c.kernel.get("hash"),
                                                          c.cell.cmdline_words)}


def _metrics_against(src: Source) -> str:
    assert src.baseline is not None
    if not any(c.metrics for c in src.results.cells):
        return ""
    try:
        c = comparing.compare_runs(src.baseline, src.results,
                                   (str(src.baseline_dir), str(src.dir)))
    except (UserError, ArithmeticError, ValueError) as exc:
        return w.el("p", w.text(f"Metrics not compared: {exc}"), "note")
    order = {"regression": 0, "higher": 1, "lower": 1, "improvement": 2}
    rows = sorted(c.rows, key=lambda p: order.get(p.change, 3))
    out = [f"<tr><td><b>{w.text(p.change)}</b></td><td>{w.text(p.scenario)}/{w.text(p.id)}</td>"
           f"<td>{w.text(p.metric)}</td><td class=\"num\">{p.diff.value:.3f}×</td>"
           f'<td class="num">{p.diff.ci[0]:.3f}–{p.diff.ci[1]:.3f}</td>'
           f"<td>{w.text(p.sentence)}</td></tr>" for p in rows]
    return w.el("h3", "metrics, this run against the baseline") + w.table(
        ("change", "cell", "metric", "this / baseline", "95% interval", "in words"), out)


# ---------------------------------------------------------------- tests from KTAP

def _tests(src: Source) -> str:
    cells = [c for c in src.results.cells if c.tests]
    if not cells:
        return ""
    parts = [w.el("h2", "Tests (kselftest, KUnit)")]
    budget = MAX_TEST_ROWS
    for cell in cells:
        tests = [t for t in tests_of(cell) if t.kind == "test"]
        suites: dict[str, list[Test]] = {}
        for t in tests:
            suites.setdefault(t.name.split(".")[0], []).append(t)
        inner = []
        for suite, members in suites.items():
            inner.append(_suite(suite, members, budget))
            budget -= len(members)
        status = Status.worst(t.status for t in tests).value
        said = _count_words(tests)
        summary = (f'<span class="badge b-{status}">{w.text(status)}</span> '
                   f"{w.text(cell.scenario)} / {w.text(cell.id)}: {w.text(said)}")
        parts.append(w.el("details", w.el("summary", summary) + "".join(inner), "f",
                          data__st=status))
    return w.el("section", "".join(parts), id="tests")


def _suite(suite: str, tests: list[Test], budget: int) -> str:
    """A suite's tests as a table; past the page's row budget, only those that did not
    pass are listed and the passing ones counted."""
    status = Status.worst(t.status for t in tests).value
    passing = 0
    listed = []
    for t in tests:
        if t.status is not Status.PASS or passing < budget:
            listed.append(t)
            passing += t.status is Status.PASS
    hidden = len(tests) - len(listed)
    more = w.el("p", w.text(f"{hidden:,} passing tests are counted, not listed (the page "
                            f"lists {MAX_TEST_ROWS:,} rows at most; results.json has them all)"),
                "muted") if hidden else ""
    summary = (f'<span class="badge b-{status}">{w.text(status)}</span> '
               f"<code>{w.text(suite)}</code>: {w.text(_count_words(tests))}")
    return w.el("details", w.el("summary", summary) + w.table(
        ("test", "status", "boots", "reason or message"), [_test_row(t) for t in listed],
        "tests") + more, f"suite f st-{status}", open=status != "pass", data__st=status)


def _test_row(t: Test) -> str:
    message = next((r.message for r in t.rows if r.message), "")
    st = t.shown_status
    return (f'<tr class="f" data-st="{"fail" if st == "flaky" else st}">'
            f"<td><code>{w.text(t.name, 300)}</code></td>"
            f'<td><span class="badge b-{st}">{w.text(st)}</span></td>'
            f'<td class="o">{outcomes(t.rows)}</td>'
            f"<td>{w.text(_first_line(message), 300)}</td></tr>")


def _count_words(tests: list[Test]) -> str:
    by: dict[str, int] = {}
    for t in tests:
        by[t.shown_status] = by.get(t.shown_status, 0) + 1
    return f"{len(tests):,} tests: " + ", ".join(f"{n:,} {k}" for k, n in sorted(by.items()))


# ---------------------------------------------------------------- cells

def _cells(src: Source) -> str:
    parts = [w.el("h2", "Cells")]
    for cell in src.results.cells:
        parts.append(_cell(src, cell))
    return w.el("section", "".join(parts), id="cells")


def _cell(src: Source, cell: CellResult) -> str:
    status = cell.status.value
    summary = (f'<span class="badge b-{status}">{w.text(status)}</span> '
               f"{w.text(cell.scenario)} / {w.text(cell.id)} "
               f"<span class=\"o\">{''.join(SYMBOL[b.status] for b in cell.boots)}</span>")
    kpti = "-" if cell.kpti_active is None else str(cell.kpti_active).lower()
    facts = [("kernel", f"{cell.cell.kernel} ({cell.kernel_release or '?'}), command line: "
                        f"{' '.join(cell.cell.cmdline_words) or '(none)'}"),
             ("accelerator", f"{cell.accel or '?'}, {cell.timing}"), ("KPTI active", kpti),
             ("boots", cell.boot_policy or cell.boot_mode or "-"),
             ("duration", f"{cell.duration_s:.1f} s")]
    if cell.error_message:
        facts.append(("error", cell.error_message))
    dl = w.el("dl", "".join(f"<dt>{w.text(k)}</dt><dd>{w.text(v)}</dd>" for k, v in facts), "kv")
    cdir = f"{cell.scenario}/{cell.id}"
    files = w.el("p", "files: " + src.link(f"{cdir}/result.json", "result.json"))
    body = dl + _boots_table(src, cell) + _steps_table(cell) + _metrics_table(cell) + files
    return w.el("details", w.el("summary", summary) + body, f"cell f st-{status}",
                open=status != "pass", data__st=status, id=w.anchor("cell", cdir))


def _boots_table(src: Source, cell: CellResult) -> str:
    rows = []
    for b in cell.boots:
        f = b.facts
        where = ", ".join(f"{k} {v}" for k, v in b.worker.items() if isinstance(v, str))
        logs = " ".join(src.link(v, k) for k, v in b.logs.items())
        script = src.link(str(Path(b.logs["console"]).parent / "reproduce.sh"),
                          "reproduce.sh") if b.logs.get("console") else ""
        outs = " ".join(src.link(s.output, Path(s.output).name) for s in b.steps if s.output)
        rows.append("<tr>" + "".join([
            f'<td class="num">{b.index}</td>',
            f'<td><span class="badge b-{b.status.value}">{w.text(b.status.value)}</span></td>',
            f"<td>{w.text(f.boot if f else '-')}</td>",
            f'<td class="num">{f.boot_s:.2f}</td>' if f else "<td>-</td>",
            f'<td class="num">{_secs(b.start_s)}</td>',
            f'<td class="num">{b.duration_s:.1f}</td>',
            f"<td>{w.text(where or '-')}</td>",
            f"<td>{logs} {script} {outs}</td>",
            f"<td>{w.text(b.error or b.note or (f.note if f else ''), 600)}</td>"]) + "</tr>")
    return w.el("h4", "boots") + w.table(
        ("boot", "status", "how", "boot s", "started s", "took s", "where", "logs", "note"),
        rows)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _steps_table(cell: CellResult) -> str:
    groups: dict[str, Test] = {}
    for b in cell.boots:
        for step in b.steps:
            groups.setdefault(step.name, Test(cell, step.name, "step")).rows.append(
                Row(cell, b, "step", step.name, step.status, step.message, step))
    rows = []
    for t in groups.values():
        st = t.shown_status
        first = next((r.step for r in t.rows if r.step), None)
        durations = [r.step.duration_s for r in t.rows if r.step]
        message = next((r.message for r in t.rows if r.status is not Status.PASS
                        and r.message), "") or next((r.message for r in t.rows if r.message), "")
        rows.append(f'<tr class="f" data-st="{"fail" if st == "flaky" else st}">'
                    f"<td>{w.text(t.name, 300)}</td>"
                    f"<td>{w.text(first.kind if first else t.kind)}</td>"
                    f'<td><span class="badge b-{st}">{w.text(st)}</span></td>'
                    f'<td class="o">{outcomes(t.rows)}</td>'
                    f'<td class="num">{statistics.median(durations) if durations else 0:.2f}</td>'
                    f"<td><code>{w.text(first.command if first else '', 300)}</code></td>"
                    f"<td>{w.text(_first_line(message), 300)}</td></tr>")
    return w.el("h4", "steps") + w.table(
        ("step", "kind", "status", "boots", "median s", "command", "message"), rows)


def _metrics_table(cell: CellResult) -> str:
    rows = [f"<tr><td>{w.text(k)}</td><td class=\"num\">{len(v)}</td>"
            f'<td class="num" data-v="{statistics.median(v):.6g}">{_num(statistics.median(v))}'
            f'</td><td class="num">{_num(min(v))}</td><td class="num">{_num(max(v))}</td>'
            f"<td>{w.text(cell.units.get(k, ''))}</td></tr>"
            for k, v in cell.metrics.items() if v]
    return (w.el("h4", "metrics (every boot's samples)") + w.table(
        ("metric", "n", "median", "min", "max", "unit"), rows)) if rows else ""


# ---------------------------------------------------------------- files

def _files(src: Source) -> str:
    names = ["results.json", "junit.xml", "compare.json", "compare.png", "testdiff.json"]
    for s in src.results.scenarios:
        name = str(s.get("name", ""))
        names += [f"{name}/{f}" for f in ("compare.json", "compare.png", "testdiff.json")]
    found = [n for n in names if (src.dir / n).is_file()]
    items = "".join(f"<li>{src.link(n)}</li>" for n in found)
    return w.el("section", w.el("h2", "Files") + f"<ul>{items}</ul>" + w.el(
        "p", w.text(f"Every cell's logs are linked in its section above; all of them are "
                    f"under {src.dir}."), "muted"), id="files")


# ---------------------------------------------------------------- lab driver --check

CHECKS_FILE = "checks.json"
#: checks.json is a few KiB; a larger one is not the lab's.
MAX_CHECKS_JSON = 64 * 1024 * 1024
CHECK_WORDS = {"pass": "clean", "fail": "findings", "error": "could not run",
               "skip": "not run"}


def _checks(directory: Path) -> dict:
    """checks.json, its shape checked: a UserError naming it otherwise."""
    path = directory / CHECKS_FILE
    text = inputs.read_text(path, MAX_CHECKS_JSON, "driver checks")
    try:
        data = inputs.strict_json(text)
        if problem := inputs.long_string(data, inputs.MAX_RESULT_STRING):
            raise ValueError(problem)
        if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
            raise ValueError("expected an object with a list of checks")
        for c in data["checks"]:
            if not isinstance(c, dict) or not isinstance(c.get("findings", []), list) \
                    or not all(isinstance(f, dict) for f in c.get("findings", [])) \
                    or not isinstance(c.get("commands", []), list):
                raise ValueError("a check is not an object with lists of findings and "
                                 "commands")
    except RecursionError:
        raise UserError(f"{path}: not a checks.json: nested too deeply") from None
    except ValueError as exc:
        raise UserError(f"{path}: not a checks.json: {exc}") from None
    return data


def write_checks(directory: Path, out: Path | None = None) -> Path:
    """report.html of a `lab driver --check` directory (checks.json)."""
    data = _checks(directory)
    path = out or directory / FILE
    cache.write_text(path, checks_page(data, directory.absolute(), path.absolute().parent),
                     mode=0o644)
    return path


def checks_page(data: dict, directory: Path, page_dir: Path) -> str:
    checks = data["checks"]
    status = str(data.get("status", "error"))
    found = sum(len(c.get("findings", [])) for c in checks)
    driver = Path(str(data.get("driver", "?"))).name
    kernel = f"{data.get('arch', '?')}/{data.get('kernel', '?')}"
    code = 0 if status == "pass" else 1
    by = {w: sum(str(c.get("status")) == s for c in checks) for s, w in CHECK_WORDS.items()}
    head = (w.el("h1", w.text(f"lab driver --check {driver} against {kernel}: {found} "
                              f"finding{'s' * (found != 1)}"))
            + w.el("p", f"Exit code <b>{code}</b>: " + w.text(
                "every check that ran is clean" if code == 0 else
                "a check has findings or could not run") + ".", "exit")
            + w.el("ul", "".join(w.el("li", f"<b>{n}</b> {w.text(k)}") for k, n in by.items()),
                   "counts")
            + w.el("p", w.text(f"kernel {kernel} {data.get('release', '')} "
                               f"({str(data.get('kernel_hash', ''))[:12]}), its scripts from "
                               f"{data.get('kernel_source', '?')}; driver {data.get('driver')}"),
                   "envline"))
    st = {"pass": "pass", "fail": "fail", "skip": "skip"}.get(status, "error")
    body = w.el("header", head, f"top st-{st}") + _controls()
    body += w.el("section", w.el("h2", "Checks") + "".join(
        _check(c, directory, page_dir) for c in checks), id="checks")
    files = "".join(f"<li>{w.link(directory / n, n, page_dir, directory)}</li>"
                    for n in (CHECKS_FILE, "junit.xml"))
    body += w.el("section", w.el("h2", "Files") + f"<ul>{files}</ul>", id="files")
    return w.page(f"driver check {driver}: {found} findings", body)


def _check(c: dict, directory: Path, page_dir: Path) -> str:
    status = str(c.get("status", "error"))
    findings = c.get("findings", [])
    rows = [f'<tr class="f" data-st="fail"><td><code>{w.text(f.get("file", ""))}:'
            f'{w.text(f.get("line", ""))}</code></td><td>{w.text(f.get("severity", ""))}</td>'
            f'<td>{w.text(f.get("type", ""))}</td><td>{w.text(f.get("message", ""), 600)}</td>'
            "</tr>" for f in findings[:2000]]
    more = w.el("p", w.text(f"… and {len(findings) - 2000:,} more in {CHECKS_FILE}"),
                "muted") if len(findings) > 2000 else ""
    log = str(c.get("log", ""))
    parts = [w.el("p", w.text(c.get("message", "")), "note") if c.get("message") else "",
             w.table(("where", "severity", "type", "message"), rows) + more if rows else "",
             w.el("h4", "commands") + "<pre>" + w.text("\n".join(map(str, c.get("commands",
                                                                                    [])))) +
             "</pre>" if c.get("commands") else "",
             w.el("p", "log: " + w.link(directory / log, log, page_dir, directory))
             if log else ""]
    summary = (f'<span class="badge b-{w.attr(status)}">{w.text(status)}</span> '
               f"<b>{w.text(c.get('name', '?'))}</b>: "
               f"{w.text(CHECK_WORDS.get(status, status))}, {len(findings)} finding(s)")
    return w.el("details", w.el("summary", summary) + "".join(parts),
                f"failure f st-{w.attr(status)}" if status in ("fail", "error") else "cell f",
                open=status in ("fail", "error"), data__st=status)
