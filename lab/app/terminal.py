"""A person's terminal passed through to a guest's shell (lab shell): the only place
that puts a terminal in raw mode, and, with the rest of app, writes to stdout."""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty

from lab.guest.console import MAX_MARKER, Shell

#: Ctrl-], as telnet and QEMU's own monitor use it.
ESCAPE = b"\x1d"
#: After the end of a piped input, how long the guest may stay quiet before the end.
QUIET_S = 0.5
#: The guest shell's prompt, as the shell quotes it.
PROMPT = "'lab:$PWD# '"


def interact(shell: Shell, escape: bytes = ESCAPE) -> None:
    """Pass the user's terminal through to the guest shell until escape (Ctrl-]).

    Echo comes back on, with the host terminal's size. A person at a terminal
    gets bash, whose line editor has history and completion (the lab's shell
    reads without one); its `exit` ends the session as the lab's shell's would.
    """
    person = sys.stdin.isatty()
    size = os.get_terminal_size() if person else os.terminal_size((80, 24))
    # run() gives commands /dev/null as stdin: name the tty. Echo comes on after
    # bash's line is read, which is then not echoed.
    # The prompt is set for bash alone when a person is there: the lab's shell
    # showing it first would invite typing into the exec (CI once lost a ^C so).
    shell.run(f"stty -F /dev/tty {'' if person else 'echo '}rows {size.lines} "
              f"cols {size.columns}" + ("" if person else f"; export PS1={PROMPT}"), 10)
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin) if person else None
    try:
        if saved:
            shell.send(f"stty echo; PS1={PROMPT} exec bash --norc -i\n".encode())
            tty.setraw(stdin)
        _pass_through(shell, stdin, escape)
    finally:
        if saved:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def _pass_through(shell: Shell, stdin: int, escape: bytes) -> None:
    """Guest output to stdout, stdin to the guest, until the shell exits; after
    the end of a piped input, what the guest still says until QUIET_S of quiet."""
    quiet_since: float | None = None
    seen = b""
    while True:
        data = shell.read(0.02)
        if data is None:
            return
        if data:
            os.write(sys.stdout.fileno(), data)
            quiet_since = None if quiet_since is None else time.monotonic()
            seen = seen[-MAX_MARKER:] + data
            if shell.ended(seen):    # the user's `exit` ends the session
                return
        if quiet_since is not None:
            if time.monotonic() - quiet_since > QUIET_S:
                return
            continue
        ready, _, _ = select.select([stdin], [], [], 0.02)
        if ready:
            data = os.read(stdin, 1024)
            if escape in data:
                return
            if not data:
                quiet_since = time.monotonic()
                continue
            shell.send(data)
