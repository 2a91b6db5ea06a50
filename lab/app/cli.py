"""The command line: parsing, signals and exit codes; the one sys.exit. Each command
is a module of lab/app/commands/, registered in its MODULES."""

from __future__ import annotations

import argparse
import signal
import sys

from lab.app import commands, report
from lab.core.errors import GuestError, LabError, OutputLost, UserError
from lab.host import proc


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # bad usage is bad input: exit 2, one line
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lab", description="A QEMU hardware lab for kernel and driver developers.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in commands.MODULES:
        command.register(sub)
    return p


#: Signals that stop the lab; each exits with 128 + its number, after cleanup.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


#: git bisect run's codes: good, bad, and "this commit cannot be tested".
GOOD, BAD, SKIP = 0, 1, 125


def bisect_code(code: int | None, exc: BaseException | None = None) -> int:
    """`lab exec --bisect`'s exit code, by git bisect run's convention (never 126 or
    more, which would abort the bisect). The command's own 0 is good, 1-124 bad,
    125 skip, and 126-255 (not found, a signal) bad. A kernel that panics, hangs
    or loses its machine is bad; anything else that stops the lab (a build that
    fails, an option that does not take effect, QEMU missing, output lost, a
    usage error, Ctrl-C) means this commit could not be tested: skip."""
    if exc is not None:
        lost_output = isinstance(exc, OutputLost)
        return BAD if isinstance(exc, GuestError) and not lost_output else SKIP
    assert code is not None
    return code if code <= SKIP else BAD


def _bisecting(argv: list[str]) -> bool:
    """Whether this is `lab exec --bisect` (known before the arguments are parsed,
    so that a usage error, too, exits with a code git bisect run understands)."""
    words = argv[:argv.index("--")] if "--" in argv else argv
    return "exec" in words and "--bisect" in words


def main(argv: list[str] | None = None) -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, proc.on_stop_signal)
    argv = sys.argv[1:] if argv is None else argv
    bisect = _bisecting(argv)
    error: BaseException | None = None
    try:
        args = parser().parse_args(argv)
        code = args.func(args)
    except LabError as exc:
        report.error(str(exc))
        code, error = exc.exit_code, exc
    except KeyboardInterrupt as exc:   # errors.Interrupted too
        name = getattr(exc, "name", "SIGINT")
        report.error(f"interrupted by {name}")
        code, error = 128 + signal.Signals[name].value, exc
    finally:
        proc.stop_all()
    if bisect:
        code = bisect_code(code, error)
        verdict = "good" if code == GOOD else "skip" if code == SKIP else "bad"
        report.err.print(f"lab exec --bisect: exit {code} ({verdict})")
    sys.exit(code)
