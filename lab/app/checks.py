"""The kernel community's pre-submission checks on an out-of-tree driver's sources
(Documentation/process/submit-checklist.rst), as `lab driver --check` runs them:

- checkpatch: scripts/checkpatch.pl --strict from the tree the lab kernel was
  built from, on each .c and .h file;
- W=1: the module built with `make W=1` (compiler warnings and errors);
- sparse: `make C=2 CHECK=sparse` on a copy already built, so that only sparse speaks;
- coccicheck: `make coccicheck MODE=report`, when coccinelle is installed.

Each check works on its own scratch copy of the driver (image.copy_driver) and
builds with the same make as the lab's module builds (image.module_make). A
check ends as one CheckResult: PASS (clean), FAIL (findings), ERROR (it could not
run: a tool is missing, the module does not build) or SKIP (not run: coccinelle, and
the OCaml compiler its scripts need, are optional). Its findings are parsed from its
raw log, which is kept in the output directory: (file relative to the driver
directory, line, severity, type, message). The parsers are pure functions of the text.
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.artifacts.image import copy_driver, kernel_tree, module_make
from lab.core.errors import CommandError, UserError
from lab.core.model import KernelBuild
from lab.core.results import Status
from lab.host import packages, proc
from lab.host.command import REPRODUCIBLE_ENV, Progress, quiet

#: Deadline of each check's command(s), in seconds.
DEADLINE_S = {"checkpatch": 300.0, "W=1": 600.0, "sparse": 600.0, "coccicheck": 1800.0}
#: The log file of each check in the output directory.
LOGS = {"checkpatch": "checkpatch.log", "W=1": "w1.log", "sparse": "sparse.log",
        "coccicheck": "coccicheck.log"}
#: The files checkpatch reads; kbuild's generated *.mod.c is not the driver's.
SOURCES = ("*.c", "*.h")


@dataclass(frozen=True)
class Finding:
    """One thing a check found."""

    file: str          # relative to the driver directory (a kernel header: as printed)
    line: int          # 0 when the tool named no line
    severity: str      # checkpatch's ERROR/WARNING/CHECK, the compiler's warning/error, ...
    message: str
    type: str = ""     # checkpatch's type (LONG_LINE), gcc's option (-Wmissing-prototypes)
    column: int = 0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def summary(self) -> str:
        """One line: file:line: severity type: message."""
        return f"{self.where}: {' '.join(filter(None, (self.severity, self.type)))}: {self.message}"

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column,
                "severity": self.severity, "type": self.type, "message": self.message}


@dataclass(frozen=True)
class CheckResult:
    """One check: its verdict, its findings, what ran and where its log is."""

    name: str
    status: Status
    findings: tuple[Finding, ...] = ()
    message: str = ""                # why it could not run, or was not run
    commands: tuple[str, ...] = ()   # the command lines, as a shell would take them
    log: str = ""                    # its raw log, relative to the output directory
    duration_s: float = 0.0

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status.value, "message": self.message,
                "findings": [f.to_json() for f in self.findings],
                "commands": list(self.commands), "log": self.log,
                "duration_s": round(self.duration_s, 2)}


@dataclass(frozen=True)
class CheckRun:
    """Every check of one driver against one lab kernel."""

    driver: Path
    kernel: KernelBuild
    source: Path                     # the kernel tree whose scripts ran
    results: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def status(self) -> Status:
        """PASS when every check that ran is clean; a check not run changes nothing."""
        return Status.worst(r.status for r in self.results)

    def to_json(self) -> dict:
        return {"driver": str(self.driver), "arch": self.kernel.arch,
                "kernel": self.kernel.kernel, "kernel_hash": self.kernel.hash,
                "release": self.kernel.release, "kernel_source": str(self.source),
                "status": self.status.value, "checks": [r.to_json() for r in self.results]}


# ---------------------------------------------------------------- parsers

def _relative(path: str, copy: str) -> str:
    """path relative to the driver directory when it lies in the scratch copy."""
    prefix = copy.rstrip("/") + "/"
    return path[len(prefix):] if copy and path.startswith(prefix) else path


#: checkpatch --show-types: "WARNING:LONG_LINE: line length of 105 exceeds 100 columns"
_CP_HEAD = re.compile(r"^(?P<sev>ERROR|WARNING|CHECK):(?P<type>[A-Z0-9_]+): (?P<msg>.*)$")
#: ... then where: "#12: FILE: pl011_lab.c:12:"
_CP_FILE = re.compile(r"^#\d+: FILE: (?P<file>.+?):(?P<line>\d+):\s*$")


def parse_checkpatch(text: str, copy: str = "", file: str = "") -> list[Finding]:
    """checkpatch.pl --show-types output; file names a finding that gives no FILE line."""
    found: list[Finding] = []
    pending: re.Match | None = None
    for line in text.splitlines():
        if pending is not None:
            where = _CP_FILE.match(line)
            found.append(Finding(
                _relative(where["file"], copy) if where else file,
                int(where["line"]) if where else 0, pending["sev"], pending["msg"],
                pending["type"]))
            pending = None
            if where:
                continue
        pending = _CP_HEAD.match(line)
    if pending is not None:
        found.append(Finding(file, 0, pending["sev"], pending["msg"], pending["type"]))
    return found


#: gcc and sparse: "file:line:col: warning: message [-Wflag]"; sparse's details of
#: one finding follow it at the same place without a severity ("   expected ...").
_DIAG = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)? "
                   r"(?P<sev>warning|error|fatal error): (?P<msg>.*?)"
                   r"(?: \[(?P<flag>-W[^\]]+)\])?$")
_DETAIL = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)?\s{2,}(?P<msg>\S.*)$")


def parse_compiler(text: str, copy: str = "") -> list[Finding]:
    """gcc's and sparse's diagnostics (their notes and source excerpts are left out;
    sparse's indented details are added to the finding they explain)."""
    found: list[Finding] = []
    for line in text.splitlines():
        if m := _DIAG.match(line):
            found.append(Finding(_relative(m["file"], copy), int(m["line"]), m["sev"],
                                 m["msg"], m["flag"] or "", int(m["col"] or 0)))
        elif (d := _DETAIL.match(line)) and found \
                and found[-1].line == int(d["line"]) \
                and found[-1].file == _relative(d["file"], copy):
            last = found[-1]
            found[-1] = Finding(last.file, last.line, last.severity,
                                f"{last.message}; {d['msg'].strip()}", last.type, last.column)
    return found


#: coccicheck MODE=report (coccilib.report): "file:line:col-col: WARNING: message"
_COCCI = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+)-\d+: (?P<msg>.*)$")
_COCCI_SEV = re.compile(r"^(?P<sev>ERROR|WARNING|INFO|CHECK)\b:?\s*(?P<msg>.*)$")


def parse_coccicheck(text: str, copy: str = "") -> list[Finding]:
    """coccicheck's report lines. spatch's own warnings about the semantic patches
    ("warning: line 134: should no_llseek be a metavariable?") are not findings."""
    found = []
    for line in text.splitlines():
        if m := _COCCI.match(line):
            sev = _COCCI_SEV.match(m["msg"])
            found.append(Finding(_relative(m["file"], copy), int(m["line"]),
                                 sev["sev"] if sev else "report",
                                 sev["msg"] if sev else m["msg"], column=int(m["col"])))
    return found


# ---------------------------------------------------------------- running

class _Log:
    """A check's raw log in the output directory; each command's output is read
    back from it (the log is where proc.run puts a command's whole output)."""

    def __init__(self, path: Path, progress: Progress, phase: str) -> None:
        self.path, self.progress, self.phase = path, progress, phase
        self.commands: list[str] = []
        path.write_text("")

    def note(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"# {text}\n")

    def run(self, argv: Sequence[str | Path], deadline: float, cwd: Path) -> tuple[int, str]:
        """(exit code, what the command printed); CommandError if it overran."""
        self.commands.append(shlex.join(str(a) for a in argv))
        start = self.path.stat().st_size
        done = proc.run(argv, deadline=deadline, log_path=self.path, cwd=cwd, check=False,
                        env=REPRODUCIBLE_ENV, what=self.phase, keep_output=False,
                        progress=lambda line: self.progress(self.phase, line))
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            fh.seek(start)
            return done.returncode, fh.read()


@dataclass
class _Check:
    """What one check needs: the kernel, the driver, a scratch place, its log."""

    name: str
    kbuild: KernelBuild
    driver: Path
    work: Path
    log: _Log

    def copy(self) -> Path:
        copy = copy_driver(self.driver, self.work / re.sub(r"\W", "_", self.name))
        self.log.note(f"{self.driver} copied to {copy}: paths below are in the copy")
        return copy

    def result(self, status: Status, findings: Sequence[Finding] = (),
               message: str = "") -> CheckResult:
        return CheckResult(self.name, status, tuple(findings), message,
                           tuple(self.log.commands), self.log.path.name)


def _verdict(findings: Sequence[Finding]) -> Status:
    return Status.FAIL if findings else Status.PASS


def _missing(command: str) -> str | None:
    """None when command is on PATH, else what to install (lab.host.packages names it)."""
    try:
        packages.require(command)
    except UserError as exc:
        return str(exc)
    return None


def _checkpatch(c: _Check) -> CheckResult:
    """checkpatch.pl --strict on each source file, in tree mode (--root): that turns
    on its checks that read the tree (<asm/x.h> where <linux/x.h> exists, DT
    compatibles). It runs in the copy, so that it finds no .git of the user's
    (it would ask git, not the tree, for CamelCase names) and writes its
    CamelCase cache there."""
    script = kernel_tree(c.kbuild) / "scripts" / "checkpatch.pl"
    if not script.is_file():
        return c.result(Status.ERROR, message=f"{script}: not found in the kernel tree")
    if problem := _missing("perl"):
        return c.result(Status.ERROR, message=problem)
    copy = c.copy()
    files = sorted({str(p.relative_to(copy)) for pattern in SOURCES for p in copy.rglob(pattern)})
    if not files:
        return c.result(Status.ERROR, message=f"{c.driver}: no .c or .h file to check")
    findings: list[Finding] = []
    for name in files:
        code, text = c.log.run(["perl", script, "--strict", "--show-types", "--color=never",
                                f"--root={script.parent.parent}", "-f", name],
                               DEADLINE_S["checkpatch"], copy)
        found = parse_checkpatch(text, str(copy), name)
        if code not in (0, 1) or (code == 1 and not found):
            return c.result(Status.ERROR, findings,
                            f"checkpatch.pl exited with {code} on {name}; see {c.log.path}")
        findings += found
    return c.result(_verdict(findings), findings)


def _w1(c: _Check) -> CheckResult:
    """The module built with W=1; the compiler's warnings and errors are findings."""
    copy = c.copy()
    code, text = c.log.run(module_make(c.kbuild, copy, "W=1", "modules"), DEADLINE_S["W=1"],
                           copy)
    findings = parse_compiler(text, str(copy))
    if code != 0:
        return c.result(Status.ERROR, findings,
                        f"the module does not build (make exited with {code}); see {c.log.path}")
    return c.result(_verdict(findings), findings)


def _sparse(c: _Check) -> CheckResult:
    """sparse through kbuild (C=2 checks every source). The copy is built first, so
    the C=2 make compiles nothing and everything it prints is sparse's: gcc and
    sparse write their warnings alike."""
    if problem := _missing("sparse"):
        return c.result(Status.ERROR, message=problem)
    copy = c.copy()
    code, _ = c.log.run(module_make(c.kbuild, copy, "modules"), DEADLINE_S["sparse"], copy)
    if code != 0:
        return c.result(Status.ERROR, message=f"the module does not build (make exited with "
                                              f"{code}), so sparse did not run; see {c.log.path}")
    code, text = c.log.run(module_make(c.kbuild, copy, "C=2", "CHECK=sparse", "modules"),
                           DEADLINE_S["sparse"], copy)
    findings = parse_compiler(text, str(copy))
    if code != 0:
        return c.result(Status.ERROR, findings, f"make C=2 exited with {code}; see {c.log.path}")
    return c.result(_verdict(findings), findings)


def _coccicheck(c: _Check) -> CheckResult:
    """Every semantic patch of the tree's scripts/coccinelle, in report mode. Optional:
    without spatch or the OCaml compiler its scripts need, the check is not run (and
    says which package gives it)."""
    for command in ("spatch", "ocamlopt"):    # the tree's OCaml scripts need ocamlopt
        if problem := _missing(command):
            return c.result(Status.SKIP, message=f"not run: {problem}")
    if not Path(packages.PYTHON_LIBRARY).exists():   # and its Python scripts libpython
        package = packages.PYTHON_LIBRARY_PACKAGE
        return c.result(Status.SKIP, message=f"not run: {packages.PYTHON_LIBRARY} not found: "
                        f"install the Debian package {package} (apt-get install {package}, "
                        "or lab doctor --install)")
    copy = c.copy()
    code, text = c.log.run(module_make(c.kbuild, copy, "coccicheck", "MODE=report"),
                           DEADLINE_S["coccicheck"], copy)
    findings = parse_coccicheck(text, str(copy))
    if code != 0:
        return c.result(Status.ERROR, findings,
                        f"coccicheck exited with {code}; see {c.log.path}")
    return c.result(_verdict(findings), findings)


#: The checks, in the order they run and are reported.
CHECKS: dict[str, Callable[[_Check], CheckResult]] = {
    "checkpatch": _checkpatch, "W=1": _w1, "sparse": _sparse, "coccicheck": _coccicheck}


def _one(name: str, kbuild: KernelBuild, driver: Path, work: Path, out: Path,
         progress: Progress) -> CheckResult:
    """One check, timed; a command that overran its deadline makes it an ERROR."""
    progress(name, str(driver))
    check = _Check(name, kbuild, driver, work, _Log(out / LOGS[name], progress, name))
    started = time.monotonic()
    try:
        result = CHECKS[name](check)
    except CommandError as exc:
        result = check.result(Status.ERROR, message=str(exc).splitlines()[0])
    return CheckResult(result.name, result.status, result.findings, result.message,
                       result.commands, result.log, time.monotonic() - started)


def run_checks(kbuild: KernelBuild, driver: Path, out: Path,
               progress: Progress = quiet) -> CheckRun:
    """Every check of CHECKS on the module directory driver against kbuild; the raw
    logs go to out (which it creates). A finding is a result, not an exception."""
    if not (driver / "Kbuild").is_file():
        raise UserError(f"{driver}: not an out-of-tree module directory (no Kbuild file)")
    source = kernel_tree(kbuild)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab-check-") as tmp:
        results = tuple(_one(name, kbuild, driver, Path(tmp), out, progress)
                        for name in CHECKS)
    return CheckRun(driver, kbuild, source, results)

