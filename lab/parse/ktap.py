"""KTAP parsing: kernel test output (KUnit at boot, kselftest's runner) into a tree of tests.

Follows Documentation/dev-tools/ktap.rst and the behaviour of the kernel's own
tools/testing/kunit/kunit_parser.py (Linux 6.1); no maintained PyPI parser handles
KTAP nesting (tap.py, pytap13, tap2junit, taptaptap3 and TAP-Consumer are flat TAP
13 parsers). Why a state machine and not kunit_parser's recursive descent: the input
is a console, where anything may interleave or stop, and the lab feeds it line by
line (KtapParser.feed); an explicit stack also bounds the nesting (MAX_DEPTH).

What it accepts:
- `KTAP version 1`, `TAP version 13/14`; plans `1..N` (also after the results);
  `ok`/`not ok N name # DIRECTIVE reason`, with SKIP, XFAIL, TIMEOUT, ERROR, TODO
  (case-insensitive, so kselftest.h's `# error` too); diagnostics `# ...`.
- Nesting by the text in front of a line: indentation (KUnit: 4 spaces a level,
  the spec's example: 2) and kselftest's `# ` prefixes (runner.sh pipes each test's
  output through prefix.pl), in any mix. A version line, a `# Subtest:` header, a
  plan or a result deeper than the test being parsed opens a child of it.
- Per-line stamps are removed before anything else: the kernel's `[    1.234567]`
  (with a `[    T1]` caller id) and the lab's console.log `  1.234 kernel | `.
  Text in front of the first version line that is not indentation (a console tag,
  one word) is a prefix every later line must carry, as in kunit_parser.
- Lines that are none of these (kernel messages, a program's output) are unknown
  lines: they change no structure and go to the log of the test that was running,
  as KTAP's diagnostic lines do (they belong to the test whose result follows).
- TAP 13 YAML blocks (`  ---` .. `  ...` right after a result) go to that test's
  diagnostics, uninterpreted; a block ends at `...` or at the first line less indented.
- A test whose result line never comes (the kernel crashed, the log was cut, a
  parent's result came first) is an ERROR, and so is each test a plan announced
  but the output never reported; the rest of the tree is kept. A planned test the
  kselftest runner announced (`# selftests: DIR: TEST`) keeps that name. A missing
  plan alone is no error (the spec allows it and 6.1's parameterised KUnit tests print
  none): with no plan the count cannot be checked.

Statuses, and how they map onto lab.core.results.Status (which has no xfail or timeout):

| KtapStatus | from                                   | results.Status | message        |
|------------|----------------------------------------|----------------|----------------|
| pass       | `ok`, or `ok ... # TODO`               | PASS           |                |
| fail       | `not ok`                               | FAIL           | the reason     |
| skip       | `# SKIP` (with ok or not ok)           | SKIP           | the reason     |
| xfail      | `# XFAIL`, `not ok ... # TODO`         | SKIP           | `xfail: ...`   |
| timeout    | `# TIMEOUT`                            | FAIL           | `timeout: ...` |
| error      | `# ERROR`, or no result line           | ERROR          | the reason     |

xfail maps as pytest's JUnit output maps it (skipped, saying xfail), so an expected
failure neither fails a run nor passes for a pass; timeout is the test's failure
(kselftest's runner says `not ok`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from lab.parse import consolelog

#: Longer lines are cut here: a console line of megabytes is noise, and this bounds
#: the work per line (every pattern below is linear) and the memory per test.
MAX_LINE = 4096
#: Deeper nesting is read as unknown lines. KUnit 6.1 nests 3 levels, kselftest 2-3.
MAX_DEPTH = 32
#: A plan that announces more missing tests than this gets this many error rows and
#: a note that says how many more there were.
MAX_MISSING = 1000


class KtapStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    XFAIL = "xfail"
    TIMEOUT = "timeout"
    ERROR = "error"


#: Statuses that mean something went wrong, worst first.
BAD = (KtapStatus.ERROR, KtapStatus.TIMEOUT, KtapStatus.FAIL)


@dataclass
class KtapTest:
    """One test: its result line, and what was printed while it ran.

    The root (what parse returns) has no name and holds the top-level tests; its
    log holds what came before, between and after them.
    """

    name: str = ""
    #: A test starts as an error: only its result line makes it anything else.
    status: KtapStatus = KtapStatus.ERROR
    number: int = 0
    #: What follows `#` on the result line, less a known directive keyword
    #: (`45 seconds` for `# TIMEOUT 45 seconds`, `exit=1` for kselftest's `# exit=1`).
    #: A result with no name but a directive is named by this, as kselftest.h
    #: prints them (`ok 3 # SKIP CLOCK_TAI`).
    directive_reason: str = "no result line"
    #: Diagnostic lines (`# ...`), without the `#`.
    diagnostics: list[str] = field(default_factory=list)
    #: Unknown lines (kernel messages, program output) as they were, stamps included.
    log: list[str] = field(default_factory=list)
    subtests: list[KtapTest] = field(default_factory=list)


#: Bounded repeats: a line of spaces must not make the match backtrack over all of it.
_STAMP = re.compile(
    rf"(?:{consolelog.PATTERN})?"                           # console.log: "  1.234 kernel | "
    r"(?:\[ {0,12}\d{1,12}\.\d{1,9}\](?:\[ {0,12}[CT]\d{1,9}\])? ?)?")  # "[    1.234567][  T1] "
_LEAD = re.compile(r"(?:[ \t]|#(?=[ \t]|$))*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_VERSION = re.compile(r"K?TAP version \d+$")
#: The first version line, found anywhere in a line (after a console tag).
_FIRST_VERSION = re.compile(r"\bK?TAP version \d+$")
_PLAN = re.compile(r"1\.\.(\d{1,9})(?!\d)[ \t]*(?:#.*)?$")
_RESULT = re.compile(r"(not )?ok(?=[ \t#]|$)[ \t]*(?:(\d{1,9})(?=[ \t#]|$)[ \t]*)?(?:-[ \t]+)?")
_DIRECTIVE = re.compile(r"(skip(?:ped)?|todo|xfail|timeout|error)\b:?[ \t]*", re.IGNORECASE)
_SUBTEST = re.compile(r"Subtest:[ \t]*(.*)$")
#: kselftest/runner.sh announces each test as `# selftests: $DIR: $TEST`.
_KSFT = re.compile(r"selftests: (\S+): (\S+)$")


def _clean(raw: str) -> str:
    """One line, bounded, without its line end, control bytes made visible."""
    return _CONTROL.sub("\ufffd", raw[:MAX_LINE].rstrip())


def _split_lead(text: str) -> tuple[str, str]:
    """The nesting in front of a line (spaces, tabs, and `#` followed by a blank), and the rest."""
    rest = text.lstrip(" \t")
    if rest.startswith("#"):   # the slower, general case
        rest = text[_LEAD.match(text).end():]   # type: ignore[union-attr]  # matches ""
    return text[:len(text) - len(rest)], rest


def _console_prefix(pre: str) -> str:
    """The part of the text before the first version line that is not indentation."""
    j = len(pre)
    while j > 0 and (pre[j - 1] in " \t" or (pre[j - 1] == "#" and
                                              (j == len(pre) or pre[j] in " \t"))):
        j -= 1
    return pre[:j]


def _status(ok: bool, directive: str) -> KtapStatus:
    word = directive.lower()
    if word.startswith("skip"):
        return KtapStatus.SKIP
    if word == "xfail" or (word == "todo" and not ok):
        return KtapStatus.XFAIL
    if word == "timeout":
        return KtapStatus.TIMEOUT
    if word == "error":
        return KtapStatus.ERROR
    return KtapStatus.PASS if ok else KtapStatus.FAIL


@dataclass
class _Result:
    status: KtapStatus
    number: int | None
    name: str
    reason: str


def _result(rest: str) -> _Result | None:
    """`ok 1 - name # SKIP reason` taken apart; None when the line is no result."""
    m = _RESULT.match(rest)
    if not m:
        return None
    name, _, comment = rest[m.end():].partition("#")
    comment = comment.strip()
    d = _DIRECTIVE.match(comment)
    directive, reason = (d.group(1), comment[d.end():]) if d else ("", comment)
    number = int(m.group(2)) if m.group(2) else None
    name, reason = name.strip(), reason.strip()
    # kselftest.h names a test after its directive: `ok 3 # SKIP CLOCK_TAI`.
    return _Result(_status(m.group(1) is None, directive), number,
                   name or (reason if directive else ""), reason)


@dataclass
class _Frame:
    """The list of subtests of one test being parsed: its indentation and its plan."""

    owner: KtapTest
    prefix: str
    plan: int | None = None
    #: Where this document's tests start in owner.subtests (a new version line at the
    #: same level starts a new document: kselftest prints one per collection).
    first: int = 0
    #: The name the kselftest runner announced for the next test.
    hint: str = ""
    #: Lines since this list's last result: they belong to the test that comes next.
    diagnostics: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.owner.subtests) - self.first

    def hand_over(self, test: KtapTest) -> None:
        test.diagnostics += self.diagnostics
        test.log += self.log
        self.diagnostics, self.log = [], []


_NOWHERE = -2   # _locate: the line fits no open level
_ABOVE = -1     # _locate: the line is shallower than the outermost level


class KtapParser:
    """Feed it lines as they come (feed), then take the tree (finish).

    The state is a stack of _Frames, outermost first: frame i+1 lists the subtests
    of the last test of frame i, which waits for its result line.
    """

    def __init__(self) -> None:
        self.root = KtapTest(status=KtapStatus.PASS, directive_reason="")
        self._stack: list[_Frame] = []
        self._console: str | None = None   # None until the first version line
        self._last: KtapTest | None = None  # the test of the last result line (YAML)
        self._last_lead = ""
        self._yaml: str | None = None      # inside a YAML block: its indentation
        self._done = False

    def feed(self, text: str) -> None:
        """One line (or several, separated by newlines), without or with its newline."""
        for raw in text.split("\n"):
            line = _clean(raw)
            if line.strip():
                self._line(line)

    def finish(self) -> KtapTest:
        """Close everything still open (what never got a result is an error), return the root."""
        if not self._done:
            self._done = True
            started = bool(self._stack)
            self._close(0, None)
            rows = flatten(self.root)
            if rows:
                self.root.status = _worst(t.status for _, t in rows)
            else:
                self.root.status = KtapStatus.ERROR
                self.root.directive_reason = ("no tests in the KTAP output" if started
                                              else "no KTAP version line in the output")
        return self.root

    def _line(self, line: str) -> None:
        stamp = _STAMP.match(line)
        body = line[stamp.end():] if stamp else line
        if self._console is None and not self._start(body):
            self.root.log.append(line)
            return
        assert self._console is not None
        if not body.startswith(self._console):
            self._unknown(line, None)
            return
        body = body[len(self._console):]
        if self._yaml is not None and self._in_yaml(body, line):
            return
        lead, rest = _split_lead(body)
        yaml_follows, self._last = self._last, None
        if _VERSION.match(rest):
            self._version(lead, line)
        elif m := _PLAN.match(rest):
            self._plan(lead, int(m.group(1)), rest, line)
        elif (r := _result(rest)) is not None:
            self._on_result(lead, r, line)
        elif rest == "---" and yaml_follows is not None and len(lead) > len(self._last_lead):
            self._yaml, self._last = lead, yaml_follows
            yaml_follows.diagnostics.append(rest)
        else:
            self._other(lead, rest, line)

    def _start(self, body: str) -> bool:
        """Start at the first version line (or plan): it sets the console prefix."""
        m = _FIRST_VERSION.search(body)
        if not m and not _PLAN.match(body):
            return False
        pre = body[:m.start()] if m else ""
        console = _console_prefix(pre)
        if any(c in " \t" for c in console):   # prose that ends in "TAP version 13"
            return False
        self._console = console
        self._stack.append(_Frame(self.root, pre[len(self._console):]))
        return True

    def _in_yaml(self, body: str, line: str) -> bool:
        """Whether the line is part of the YAML block (which it may end)."""
        assert self._yaml is not None and self._last is not None
        if not body.startswith(self._yaml):
            self._yaml = self._last = None
            return False
        text = body[len(self._yaml):]
        self._last.diagnostics.append(text)
        if text.strip() == "...":
            self._yaml = self._last = None
        return True

    def _locate(self, lead: str) -> int:
        """The frame this level is, len(stack) for a new child, or _ABOVE/_NOWHERE."""
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i].prefix == lead:
                return i
        if lead.startswith(self._stack[-1].prefix):
            return len(self._stack) if len(self._stack) < MAX_DEPTH else _NOWHERE
        if self._stack[0].prefix.startswith(lead) and len(self._stack) < MAX_DEPTH:
            return _ABOVE
        return _NOWHERE

    def _frame_for(self, lead: str) -> int:
        """As _locate, but a level above the outermost becomes the new outermost."""
        i = self._locate(lead)
        if i == _ABOVE:
            self._reroot(lead)
            return 0
        return i

    def _reroot(self, lead: str) -> None:
        """The log began inside a test (KUnit in a module prints suites with no top
        header): what was parsed so far becomes the subtests of a test at `lead`."""
        old = self._stack[0]
        inner = KtapTest(subtests=self.root.subtests[old.first:])
        self.root.subtests[old.first:] = [inner]
        inner.number = len(self.root.subtests) - old.first
        self._stack.insert(0, _Frame(self.root, lead, first=old.first))
        old.owner, old.first = inner, 0

    def _version(self, lead: str, line: str) -> None:
        i = self._frame_for(lead)
        if i == _NOWHERE:
            self._unknown(line, None)
        elif i == len(self._stack):
            self._open(lead)
        else:   # another document at a level that has one
            self._close(i + 1, None)
            frame = self._stack[i]
            self._account(frame, None)
            frame.first, frame.plan, frame.hint = len(frame.owner.subtests), None, ""

    def _plan(self, lead: str, count: int, rest: str, line: str) -> None:
        i = self._frame_for(lead)
        if i == len(self._stack) and self._open(lead):
            self._stack[-1].plan = count
        elif 0 <= i < len(self._stack) and self._stack[i].plan is None:
            self._close(i + 1, None)
            self._stack[i].plan = count
        elif 0 <= i:   # a second plan for one list: said, not obeyed
            self._unknown(line, rest)
        else:
            self._unknown(line, None)

    def _on_result(self, lead: str, r: _Result, line: str) -> None:
        i = self._frame_for(lead)
        if i == _NOWHERE or (i == len(self._stack) and not self._open(lead)):
            self._unknown(line, None)
            return
        frame = self._stack[i]
        if i + 1 < len(self._stack):   # the result of the test whose subtests are open
            test = frame.owner.subtests[-1]
            test.name = r.name or test.name
            self._close(i + 1, test, r)
        else:
            test = KtapTest(name=r.name or frame.hint)
            frame.hand_over(test)
            frame.owner.subtests.append(test)
        test.status, test.directive_reason = r.status, r.reason
        test.number = r.number if r.number is not None else frame.count
        frame.hint = ""
        self._last, self._last_lead = test, lead

    def _other(self, lead: str, rest: str, line: str) -> None:
        """A line that is no version, plan or result: a header, a diagnostic, or unknown."""
        if rest.startswith("#"):
            lead, rest = lead + "#", rest[1:].strip()
        elif "#" not in lead:
            self._unknown(line, None)
            return
        level = lead[:lead.rindex("#")]
        if m := _SUBTEST.match(rest):
            if self._subtest(level, m.group(1).strip()):
                return
        elif m := _KSFT.match(rest):
            i = self._locate(level)
            if 0 <= i < len(self._stack):
                self._stack[i].hint = rest
        self._unknown(line, rest)

    def _subtest(self, level: str, name: str) -> bool:
        """`# Subtest: name` names the test whose subtests start here (or open it)."""
        i = self._locate(level)
        if i == len(self._stack):
            return self._open(level, name)
        frame = self._stack[i] if i >= 0 else None
        if frame is not None and i == len(self._stack) - 1 and i > 0 and frame.count == 0:
            frame.owner.name = name
            return True
        return False

    def _unknown(self, line: str, diagnostic: str | None) -> None:
        """A line that changes no structure: it goes to the test that is running."""
        if not self._stack:
            self.root.log.append(line)
        elif diagnostic is None:
            self._stack[-1].log.append(line)
        else:
            self._stack[-1].diagnostics.append(diagnostic)

    def _open(self, lead: str, name: str = "") -> bool:
        """A new test at the innermost level, whose subtests follow at `lead`."""
        if len(self._stack) >= MAX_DEPTH:
            return False
        parent = self._stack[-1]
        test = KtapTest(name=name or parent.hint)
        parent.hand_over(test)
        parent.owner.subtests.append(test)
        test.number, parent.hint = parent.count, ""
        self._stack.append(_Frame(test, lead))
        return True

    def _close(self, keep: int, done: KtapTest | None, r: _Result | None = None) -> None:
        """Close the frames from `keep` on, innermost first. `done` is the test whose
        result line closes them; any other test still open there never got one."""
        inherit = (r.status, r.reason) if r and r.status is KtapStatus.TIMEOUT else None
        while len(self._stack) > keep:
            frame = self._stack.pop()
            self._account(frame, inherit if frame.owner is done else None)

    def _account(self, frame: _Frame, inherit: tuple[KtapStatus, str] | None) -> None:
        """Planned tests that never reported are errors (or time out with their parent);
        the lines left over go to the first of them, else to the frame's test."""
        if frame.plan is not None:
            missing = frame.plan - frame.count
        else:
            missing = 1 if frame.hint else 0
        status, reason = inherit or (KtapStatus.ERROR,
                                     f"no result line (planned {frame.plan}, "
                                     f"reported {frame.count})" if frame.plan is not None
                                     else "no result line")
        first = None
        for k in range(min(missing, MAX_MISSING)):
            test = KtapTest(frame.hint if k == 0 else "", status, frame.count + 1, reason)
            frame.owner.subtests.append(test)
            first = first or test
        if missing > MAX_MISSING:
            frame.owner.diagnostics.append(f"{missing - MAX_MISSING} more planned tests missing")
        frame.hand_over(first or frame.owner)
        frame.hint = ""


def _worst(statuses: Iterable[KtapStatus]) -> KtapStatus:
    """ERROR over TIMEOUT over FAIL over PASS; skip only when all skipped (KTAP's bubbling)."""
    found = set(statuses)
    for status in BAD:
        if status in found:
            return status
    if found and found <= {KtapStatus.SKIP}:
        return KtapStatus.SKIP
    return KtapStatus.PASS


def parse(lines: Iterable[str] | str) -> KtapTest:
    """The tree of tests in a console log or KTAP text: a root holding the top-level tests."""
    parser = KtapParser()
    for line in (lines.splitlines() if isinstance(lines, str) else lines):
        parser.feed(line)
    return parser.finish()


def _row_name(test: KtapTest) -> str:
    """kselftest's `selftests: proc: foo` is `proc.foo`; a test with no name is `#N`."""
    if m := _KSFT.match(test.name):
        return f"{m.group(1)}.{m.group(2)}"
    return test.name or f"#{test.number}"


def _bad_below(test: KtapTest) -> bool:
    todo = list(test.subtests)
    while todo:
        t = todo.pop()
        if t.status in BAD:
            return True
        todo += t.subtests
    return False


def flatten(root: KtapTest, depth: int | None = None) -> list[tuple[str, KtapTest]]:
    """Result rows: (dotted name, test), in output order.

    With depth None, the rows are the leaves (`suite.test`, `suite.test.param`), plus
    any parent whose own result is bad when nothing below it is, so no failure hides
    (a kselftest program that timed out after its subtests passed). With depth N, the
    tests N levels down are the rows (depth=1: one row per kselftest program).
    """
    rows: list[tuple[str, KtapTest]] = []
    todo = [(_row_name(t), t, 1) for t in reversed(root.subtests)]
    while todo:
        name, test, level = todo.pop()
        if not test.subtests or level == depth:
            rows.append((name, test))
            continue
        if test.status in BAD and not _bad_below(test):
            rows.append((name, test))
        todo += [(f"{name}.{_row_name(t)}", t, level + 1) for t in reversed(test.subtests)]
    return rows
