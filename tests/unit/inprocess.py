"""The lab CLI in the test's own process: lab.app.cli.main on the arguments, with the
environment, working directory and standard streams a `python -m lab` child of
tests.conftest.lab would have, and the same result (a CompletedProcess).

It saves the half second a fresh interpreter takes to import the lab, for the tests
of what the CLI decides (exit codes, messages, refusals, what it creates). A test of
the CLI as a process (a signal to it, a child it must not leave behind) runs it with
tests.conftest.lab, in tests/process/.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import traceback

from rich.console import Console

from lab.app import cli, report
from tests.conftest import LAB, ROOT


def _console(file: io.StringIO) -> Console:
    """A console of lab/app/report.py as a lab whose output is not a terminal makes it."""
    return Console(file=file, highlight=False, markup=False, emoji=False, width=180)


def lab(*args: str, env: dict | None = None, timeout: float | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run `lab ARGS` in this process; returns its exit code, stdout and stderr.

    As in a child: env is added to os.environ, the directory is the project's,
    stdin holds input (or nothing), and an exception main lets out is a traceback
    on stderr and exit code 1. Everything is put back afterwards: the environment,
    the directory, the streams, report's consoles and the signal handlers main
    installs. timeout is accepted for the signature's sake: nothing here waits.
    """
    out, err = io.StringIO(), io.StringIO()
    saved_env = {name: os.environ.get(name) for name in env or {}}
    saved_cwd = os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_consoles = report.out, report.err
    saved_handlers = {signum: signal.getsignal(signum) for signum in cli.STOP_SIGNALS}
    os.environ.update(env or {})
    os.chdir(ROOT)
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(input or ""), out, err
    report.out, report.err = _console(out), _console(err)
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:                               # sys.exit("message"), as the interpreter does
            print(exc.code, file=err)
            code = 1
    except BaseException:                   # as the interpreter does with an uncaught one
        traceback.print_exc(file=err)
        code = 1
    finally:
        for signum, handler in saved_handlers.items():
            signal.signal(signum, handler)
        report.out, report.err = saved_consoles
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return subprocess.CompletedProcess([*LAB, *args], code, out.getvalue(), err.getvalue())
