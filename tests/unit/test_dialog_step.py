"""The dialog: step's verdicts, with a scripted program in place of the guest's."""

from __future__ import annotations

import pytest

from lab.core.deadline import Deadline
from lab.guest.console import TIMEOUT
from lab.scenario.steps.base import Context
from lab.scenario.steps.dialog import SEEN_CHARS, Dialog, Pair


class Program:
    """Prints `prints`; answers only the patterns in `answers`; ends with `status`."""

    def __init__(self, prints: str, answers: set[str], status: int = 0):
        self.prints, self.answers, self.status = prints, answers, status
        self.before, self.sent, self.closed = "", [], False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True

    def expect(self, pattern, timeout):
        if pattern not in self.answers:
            self.before = self.prints
            raise TIMEOUT(pattern)

    def sendline(self, text):
        self.sent.append(text)

    def sendcontrol(self, char):
        self.sent.append("^" + char)

    def wait(self, timeout):
        return self.status


class Guest:
    def __init__(self, program: Program):
        self.program = program

    def spawn(self, command: str, timeout: float = 30.0) -> Program:
        return self.program


def run(program: Program, step: Dialog) -> list[str]:
    return step.execute(Context(Guest(program), Deadline(5), {}, {}))


def test_a_program_that_never_answers_fails_at_the_pair_naming_pattern_and_what_it_saw():
    program = Program("x" * 5000 + "name? ", answers=set())
    step = Dialog(name="d", line=1, command="ask", pairs=(Pair(expect="hello", timeout=0.5),))
    (problem,) = run(program, step)
    assert problem.startswith("pair 1: 'hello' did not come within its deadline of 0.5 s")
    assert problem.endswith(("x" * 5000 + "name? ")[-SEEN_CHARS:])
    assert f"the last {SEEN_CHARS} characters" in problem
    assert program.closed and program.sent == []     # nothing typed after the miss


@pytest.mark.parametrize("status, want, problems", [(3, 3, []), (0, 3, ["exit code 0, expected 3"]),
                                                    (130, None, [])])
def test_pairs_send_in_order_and_the_exit_code_is_checked(status, want, problems):
    program = Program("", answers={"name\\?"}, status=status)
    step = Dialog(name="d", line=1, command="ask", expect_exit=want,
                  pairs=(Pair(expect="name\\?", send="lab"), Pair(control="c")))
    assert run(program, step) == problems
    assert program.sent == ["lab", "^c"]
