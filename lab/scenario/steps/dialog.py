"""`dialog:` an interactive program in the guest, scripted as expect/send pairs.

    - dialog: /usr/bin/ask          # started on the shell's tty, its stdin the tty
      pairs:
        - expect: "name\\?"         # a regex on what the program prints
          send: "lab"               # then this line is typed (echo is off)
          timeout: 5                # seconds for this pair (default: the step's)
        - expect: "hello, lab"
        - control: c                # ^C, as a terminal sends it
      expect_exit: 130              # default 0; `any` takes any

Each pair waits for its `expect` (if any), then types its `send` and/or `control`.
Once the pairs are done the program must end within the step's deadline, with
expect_exit. A pair whose pattern does not come in time fails the step, naming
the pattern and the last characters the program printed; the program then gets
a ^C (pexpect's engine is lab.guest.console.Dialog).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.core import inputs
from lab.core.model import Step
from lab.guest.console import EOF, TIMEOUT
from lab.scenario.schema import TEXT_LINE, Fields
from lab.scenario.steps.base import Context

#: Pairs in one dialog, at most.
MAX_PAIRS = 1000
#: How much of what the program printed a failure quotes.
SEEN_CHARS = 2000
#: The control keys a pair may send (^C, ^D, ^Z, ^\\).
CONTROLS = ("c", "d", "z", "\\")


@dataclass(frozen=True)
class Pair:
    expect: str | None = None
    send: str | None = None
    control: str | None = None
    timeout: float | None = None


@dataclass(frozen=True, kw_only=True)
class Dialog(Step):
    kind = "dialog"
    command: str
    pairs: tuple[Pair, ...] = ()
    expect_exit: int | None = 0

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Dialog:
        command = f.take("dialog", str, text=TEXT_LINE)
        if not command.strip():
            f.fail("dialog", "must not be empty")
        pairs = tuple(_pair(p) for p in f.items("pairs", MAX_PAIRS, "pairs"))
        return cls(name=common.pop("name") or f"dialog: {command[:50]}", command=command,
                   pairs=pairs, expect_exit=f.exit_code("expect_exit"), **common)

    def shown(self) -> tuple[str, str]:
        exit_ = "any exit code" if self.expect_exit is None else f"exit {self.expect_exit}"
        said = [f"{p.expect!r}" for p in self.pairs if p.expect is not None]
        return self.command, "; ".join(filter(None, [
            f"prints {', then '.join(said)}" if said else "", exit_]))

    def execute(self, ctx: Context) -> list[str]:
        problems: list[str] = []
        with ctx.guest.spawn(self.command, timeout=ctx.timeout) as program:
            for i, pair in enumerate(self.pairs, 1):
                if pair.expect is not None:
                    limit = min(pair.timeout or ctx.timeout, ctx.timeout)
                    try:
                        program.expect(pair.expect, timeout=limit)
                    except (TIMEOUT, EOF) as exc:
                        why = ("within its deadline of " f"{limit:g} s"
                               if isinstance(exc, TIMEOUT) else "before the program ended")
                        seen = program.before or ""
                        problems.append(f"pair {i}: {pair.expect!r} did not come {why}; the "
                                        f"last {min(len(seen), SEEN_CHARS)} characters it "
                                        f"printed:\n{seen[-SEEN_CHARS:]}")
                        break
                if pair.send is not None:
                    program.sendline(pair.send)
                if pair.control is not None:
                    program.sendcontrol(pair.control)
            if not problems:
                try:
                    ctx.exit_code = program.wait(timeout=ctx.timeout)
                except TIMEOUT:
                    problems.append(f"the program did not end within {ctx.timeout:g} s "
                                    f"of its last pair")
                else:
                    code = program.status
                    ctx.exit_code = code
                    if self.expect_exit is not None and code != self.expect_exit:
                        problems.append(f"exit code {code}, expected {self.expect_exit}")
        return problems


def _pair(p: Fields) -> Pair:
    expect = p.regex("expect")
    if expect == "":
        p.fail("expect", "must not be empty (an empty pattern matches at once)")
    send = p.take("send", str, None, text=TEXT_LINE)
    control = p.take("control", str, None, text=TEXT_LINE)
    if control is not None and control.lower() not in CONTROLS:
        p.fail("control", f"one of {', '.join(CONTROLS)}, got {control!r}")
    timeout = p.positive("timeout", None, most=inputs.MAX_SECONDS)
    if expect is None and send is None and control is None:
        p.fail(None, "a pair needs expect, send or control")
    p.done()
    return Pair(expect, send, control.lower() if control else None, timeout)
