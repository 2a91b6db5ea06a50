"""proc.Watched: a command watched while it runs (the KVM probe's helper, and run()'s core)."""

import os
import signal
import sys
import time

from lab.host import proc

SILENT = [sys.executable, "-c", "import time; time.sleep(600)"]


def test_the_deadline_stops_a_silent_command_without_anyone_waiting():
    with proc.Watched(SILENT, deadline=0.3) as w:
        started = time.monotonic()
        while w.poll() is None and time.monotonic() - started < 5:
            time.sleep(0.02)
        assert w.poll() is not None and w.timed_out
        assert time.monotonic() - started < 0.3 + proc.TERM_GRACE_S + 1


def test_leaving_the_block_kills_the_whole_group_however_it_is_left():
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', " \
           "'import time; time.sleep(600)']); print('started', flush=True); time.sleep(600)"
    try:
        with proc.Watched([sys.executable, "-c", code], deadline=30) as w:
            while "started" not in w.output:
                time.sleep(0.02)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert w.proc.returncode in (-signal.SIGTERM, -signal.SIGKILL)
    assert not _group_alive(w.proc.pid)                       # the grandchild went too


def _group_alive(pgid: int) -> bool:
    """Whether anyone of the group is left (after a moment for init to reap them)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.02)
    return True


def test_output_and_tail_are_kept():
    with proc.Watched([sys.executable, "-c", "print('a'); print('b')"], deadline=10) as w:
        assert w.wait() == 0
    assert w.output == "a\nb\n" and w.tail == "a\nb\n" and not w.timed_out
