"""KTAP trees into result rows (results.TestResult), shared by the kselftest and
kunit steps: statuses mapped as lab.parse.ktap documents, the kernel faults each test
saw, and the known failures (lab/data/known-failures.txt: emulation, arch) labelled.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.core.model import KernelMessage
from lab.core.results import Status, TestResult
from lab.parse import consolelog, faults, ktap
from lab.parse.ktap import KtapStatus, KtapTest

KNOWN_FAILURES = Path(__file__).resolve().parents[2] / "data" / "known-failures.txt"

_STATUS = {KtapStatus.PASS: Status.PASS, KtapStatus.FAIL: Status.FAIL,
           KtapStatus.SKIP: Status.SKIP, KtapStatus.XFAIL: Status.SKIP,
           KtapStatus.TIMEOUT: Status.FAIL, KtapStatus.ERROR: Status.ERROR}
#: What a row's message starts with, for the statuses results.Status has no word for.
_SAY = {KtapStatus.XFAIL: "xfail: ", KtapStatus.TIMEOUT: "timeout: "}
#: How much of a failed test's own output its message quotes.
MESSAGE_TAIL = 1500


@dataclass(frozen=True)
class KnownFailure:
    kind: str          # emulation, arch
    arch: str
    accel: str
    test: str          # an fnmatch pattern over row names
    reason: str

    def matches(self, arch: str, accel: str, name: str) -> bool:
        return (self.arch in ("*", arch) and self.accel in ("*", accel)
                and fnmatch.fnmatchcase(name, self.test))


def known_failures(path: Path = KNOWN_FAILURES) -> list[KnownFailure]:
    """The list's entries; a line that is not KIND ARCH ACCEL TEST REASON is a bug in it."""
    found = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = line.split(None, 4)
        if len(words) < 5:
            raise ValueError(f"{path}:{n}: expected KIND ARCH ACCEL TEST REASON")
        found.append(KnownFailure(*words))
    return found


def _text(test: KtapTest) -> list[str]:
    """Everything printed while a test ran, its subtests' too, in tree order."""
    lines = [*test.diagnostics, *test.log]
    for sub in test.subtests:
        lines += _text(sub)
    return lines


def _message(test: KtapTest) -> str:
    """A row's message: its status word, its directive's reason, and, for a bad
    result, the tail of what it printed."""
    words = _SAY.get(test.status, "") + test.directive_reason
    if test.status in ktap.BAD:
        said = "\n".join(_text(test))
        if said:
            words += ("\n" if words else "") + said[-MESSAGE_TAIL:]
    return words.strip()


def _label(row: TestResult, known: list[KnownFailure], arch: str, accel: str) -> TestResult:
    entry = next((k for k in known if k.matches(arch, accel, row.name)), None)
    if entry is None:
        return row
    if row.status in (Status.FAIL, Status.ERROR):
        return TestResult(row.name, Status.SKIP, f"xfail ({entry.kind}: {entry.reason})\n"
                          f"{row.message}".strip(), row.faults)
    return TestResult(row.name, row.status, f"listed as a known failure ({entry.kind}: "
                      f"{entry.reason}), but {row.status.value}", row.faults)


def labelled(tests: list[TestResult], arch: str, accel: str,
             known: list[KnownFailure] | None = None) -> list[TestResult]:
    """The rows with the known failures labelled (see the list's header)."""
    known = known_failures() if known is None else known
    return [_label(t, known, arch, accel) for t in tests]


def test_faults(test: KtapTest, kernel_only: bool = False) -> tuple[KernelMessage, ...]:
    """The kernel faults in the lines printed while a test ran (kernel_only: only in
    console.log's kernel lines, so a program that prints "BUG: " is no fault)."""
    lines = _text(test)
    if kernel_only:
        lines = consolelog.kernel_text(lines)
    return tuple(faults.scan("\n".join(lines)))


def rows(root: KtapTest, depth: int | None, *, arch: str = "", accel: str = "",
         seen: dict[str, tuple[KernelMessage, ...]] | None = None,
         known: list[KnownFailure] | None = None) -> list[TestResult]:
    """One row per test ktap.flatten gives at depth. seen: faults by row name found
    elsewhere (the console log); otherwise those in the test's own lines."""
    out = []
    for name, test in ktap.flatten(root, depth):
        found = seen.get(name, ()) if seen is not None else test_faults(test)
        out.append(TestResult(name, _STATUS[test.status], _message(test), found))
    return labelled(out, arch, accel, known)


def faults_by_row(lines: Iterable[str], depth: int | None) -> dict[str, tuple[KernelMessage, ...]]:
    """Row name -> faults, from a console log where kernel lines interleave the
    tests' output (lab's console.log): each fault goes to the test that was running."""
    return {name: f for name, test in ktap.flatten(ktap.parse(lines), depth)
            if (f := test_faults(test, kernel_only=True))}


def problems(tests: list[TestResult], what: str) -> list[str]:
    """A step's problems from its rows: each failed or errored test, named."""
    bad = [t for t in tests if t.status in (Status.FAIL, Status.ERROR)]
    if not tests:
        return [f"{what}: no tests reported"]
    if not bad:
        return []
    names = ", ".join(f"{t.name} ({t.status.value})" for t in bad[:20])
    more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
    return [f"{what}: {len(bad)} of {len(tests)} tests did not pass: {names}{more}"]


def read_from(path: Path | None, offset: int) -> list[str]:
    """The lines of a file from a byte offset (a console log's part of one step)."""
    if path is None or not path.exists():
        return []
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode("utf-8", errors="replace").splitlines()


def size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0
