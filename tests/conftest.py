"""Shared helpers, and the suite-wide check that no QEMU outlives the lab."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAB = [sys.executable, "-m", "lab"]
#: Every process this test session starts inherits this mark in its environment,
#: so the leak check counts only this session's QEMUs: two labs on one machine
#: (two developers, CI beside a developer) are a normal case.
SESSION_MARK = f"LAB_TEST_SESSION={uuid.uuid4().hex}"
os.environ["LAB_TEST_SESSION"] = SESSION_MARK.split("=", 1)[1]


def lab(*args: str, env: dict | None = None, timeout: float = 1800,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run the lab CLI as a user would, in a fresh process."""
    return subprocess.run([*LAB, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout, input=input)


def lab_qemus(guests: bool = False) -> list[str]:
    """Every running QEMU that this test session started, directly or through a lab;
    guests: only those that boot a kernel (a lab also runs `qemu-system-* --version`
    and probes, which come and go in a moment: a test that waits for a guest before
    it signals the lab must not take one for a guest)."""
    found = []
    mark = SESSION_MARK.encode()
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if not any(b"qemu-system" in a for a in cmd[:4]):
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark in environ and (not guests or b"-kernel" in cmd):
            found.append(b" ".join(cmd).decode(errors="replace"))
    return found


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory):
    """One `lab run scenarios/` for the whole session: (out dir, process, results)."""
    import json
    out = tmp_path_factory.mktemp("catalogue")
    result = lab("run", str(ROOT / "scenarios"), "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    return out, result, results


def cells_of(results: dict, scenario: str) -> dict:
    return {c["id"]: c for c in results["cells"] if c["scenario"] == scenario}


@pytest.fixture(scope="session", autouse=True)
def no_qemu_left_behind():
    yield
    left = lab_qemus()
    assert not left, f"QEMU processes outlived the tests: {left}"


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_raises():
    """The tests send Ctrl-C (SIGINT) and expect KeyboardInterrupt. A shell without job
    control starts a background command (`pytest ... &`, as CI scripts may) with
    SIGINT ignored, and Python keeps that: then neither Ctrl-C nor
    _thread.interrupt_main() reaches the test, and a test of Ctrl-C during a build
    hangs until the build's deadline (seen in .ci/fresh started with `&`)."""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
