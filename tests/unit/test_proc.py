"""lab.host.proc.run, the one subprocess path, against small real processes."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from lab.core.errors import BuildError, CommandError, Interrupted, UserError
from lab.host import proc
from tests.fake.kernel import gone, wait_for_pid


def test_a_failed_command_keeps_its_log_and_shows_the_tail(tmp_path):
    log = tmp_path / "build.log"
    script = "for i in $(seq 1 100); do echo line $i; done; echo 'error: boom' >&2; exit 3"
    with pytest.raises(BuildError) as err:
        proc.run(["sh", "-c", script], deadline=30, log_path=log, what="compile",
                 error=BuildError, keep_output=False)
    text = str(err.value)
    assert "compile failed (exit code 3)" in text and f"full log: {log}" in text
    assert "error: boom" in text and "line 100" in text and "line 1\n" not in text
    assert "line 1\n" in log.read_text()
    assert log.read_text().startswith("$ sh -c 'for i in")       # the argv, quoted


def test_the_deadline_holds_for_a_command_that_prints_nothing():
    started = time.monotonic()
    with pytest.raises(CommandError) as err:
        proc.run(["sleep", "30"], deadline=0.5)
    assert time.monotonic() - started < 5
    assert "sleep: did not finish within its deadline of 0.5 s (killed): sleep 30" in str(err.value)


def test_the_deadline_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(CommandError):
        proc.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], deadline=0.5)
    assert gone(wait_for_pid(pidfile))


def test_ctrl_c_kills_the_process_group_and_propagates(tmp_path):
    pidfile = tmp_path / "pid"
    pid: list[int] = []

    def interrupt() -> None:   # a real SIGINT to the main thread, as Ctrl-C sends
        try:
            pid.append(wait_for_pid(pidfile))
        finally:
            signal.pthread_kill(main, signal.SIGINT)
    main = threading.main_thread().ident

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        proc.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], deadline=60)
    assert time.monotonic() - started < 10
    assert gone(pid[0])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_while_a_child_is_started_kills_it_once_it_is_known(
        tmp_path, monkeypatch, signum):
    """The race CI met: the signal arrives while subprocess.Popen waits for its exec
    (the child already runs); Popen would have raised with the pid lost."""
    pidfile = tmp_path / "pid"
    real = proc.subprocess.Popen

    def popen_then_signal(*args, **kwargs):
        child = real(*args, **kwargs)
        wait_for_pid(pidfile)
        proc.on_stop_signal(signum, None)   # what the handler sees mid-Popen
        return child

    monkeypatch.setattr(proc.subprocess, "Popen", popen_then_signal)
    with pytest.raises(Interrupted) as err:
        proc.popen(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"],
                   stdout=proc.subprocess.DEVNULL)
    assert err.value.signum == signum
    assert gone(wait_for_pid(pidfile))
    monkeypatch.undo()
    with pytest.raises(Interrupted):   # outside popen() the handler raises at once
        proc.on_stop_signal(signum, None)


def test_stop_all_kills_a_child_that_nobody_owns_any_more(tmp_path):
    pidfile = tmp_path / "pid"
    child = proc.popen(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"],
                       stdout=proc.subprocess.DEVNULL)
    grandchild = wait_for_pid(pidfile)
    proc.stop_all()
    assert child.returncode is not None and gone(grandchild)


def test_a_missing_command_is_a_user_error_naming_its_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"depmod not found: install the Debian package kmod"):
        proc.run(["depmod", "-a"], deadline=5)
    with pytest.raises(UserError, match=r"no-such-tool not found on PATH"):
        proc.run(["no-such-tool"], deadline=5)


def test_stdin_is_dev_null_and_output_is_kept():
    done = proc.run(["sh", "-c", "cat; echo out; echo err >&2"], deadline=10)
    assert done.returncode == 0 and done.lines == ["out", "err"]


def test_without_merge_stderr_the_output_is_stdout_only(tmp_path):
    log = tmp_path / "log"
    done = proc.run(["sh", "-c", "echo err >&2; echo answer"], deadline=10,
                    merge_stderr=False, log_path=log)
    assert done.output == "answer\n"
    assert "err\n" in log.read_text()


def test_a_failure_unchecked_is_a_result(tmp_path):
    done = proc.run(["sh", "-c", "echo no; exit 4"], deadline=10, check=False)
    assert (done.returncode, done.output) == (4, "no\n")


def test_progress_sees_the_lines():
    seen: list[str] = []
    proc.run(["echo", "hello"], deadline=10, progress=seen.append)
    assert seen == ["hello"]
