"""images/tools/timeout.c behaves as coreutils' timeout does where kselftest's runner
relies on it: built with the host's gcc, run on the host."""

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def timeout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("timeout") / "timeout"
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(out),
                    str(ROOT / "images" / "tools" / "timeout.c")], check=True, timeout=120)
    return out


def status(*argv: str) -> int:
    return subprocess.run(argv, capture_output=True, timeout=30).returncode


@pytest.mark.parametrize("args, code", [
    (["--foreground", "5", "true"], 0),        # busybox's rejects --foreground
    (["0", "sleep", "0.3"], 0),                # 0: no limit (busybox's kills at once)
    (["0.2", "sleep", "5"], 124),
    (["2", "sh", "-c", "exit 3"], 3),
    (["1", "/nonexistent/program"], 127),
    (["1", "/etc/passwd"], 126),
    (["nonsense", "true"], 125),
    (["--preserve-status", "0.2", "sleep", "5"], 143),
    (["-s", "INT", "0.2", "sleep", "5"], 124),
    # KILL goes to the whole group, timeout with it (a shell then sees 137), as coreutils'
    (["-k", "0.2", "0.2", "sh", "-c", "trap '' TERM; sleep 5"], -9),
])
def test_exit_statuses_as_coreutils(timeout, args, code):
    assert status(str(timeout), *args) == code
    assert status("timeout", *args) == code     # the host's coreutils says the same


def test_kselftests_nested_call_times_out_the_test(timeout):
    t = str(timeout)
    assert status(t, "--foreground", "0.3", t, "0.3", "sleep", "5") == 124
    assert status(t, "--foreground", "0", t, "0", "true") == 0
