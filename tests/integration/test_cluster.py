"""A real Dask cluster on 127.0.0.1: a `dask scheduler` and two `dask worker`
processes, each with its own LAB_CACHE (two machines without a shared filesystem)
and one guest slot. A 4-cell matrix through `lab run --cluster` gives what a local
run gives; both workers run cells; a worker SIGKILLed in the middle of a boot does
not lose the run; no QEMU is left; everything is torn down."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SESSION_MARK, lab, lab_qemus

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.qemu

DASK = str(Path(sys.executable).parent / "dask")
#: Four cells, one boot each; each boot holds its guest for 2 s, so that a worker
#: can be killed while it runs one.
SCENARIO = """\
name: cluster
description: four cells on two workers
matrix:
  arch: [aarch64]
  kernel: [kpti, nokpti]
  cmdline:
    default: ""
    forced-on: "{kpti_on}"
steps:
  - name: KPTI is in use
    assert: {fact: kpti_active, equals: true}
    when: {kernel: kpti, cmdline: forced-on}
  - name: KPTI is not built in
    assert: {fact: kpti_active, equals: false}
    when: {kernel: nokpti}
  - name: KPTI is not forced on
    assert: {fact: kpti_active, equals: false}
    when: {kernel: kpti, cmdline: default}
  - name: hold
    run: sleep 2
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """The scheduler and the workers, each in its own session (torn down as a group)."""

    def __init__(self, tmp: Path):
        self.tmp, self.port = tmp, _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        # A boot whose worker dies runs again once, elsewhere (the default is 3 times).
        self.env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
        self.procs: dict[str, subprocess.Popen] = {}
        self._start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                  str(self.port), "--no-dashboard"], self.env)
        for name in ("w1", "w2"):
            self._start(name, [DASK, "worker", self.address, "--name", name, "--nthreads", "1",
                               "--no-nanny", "--resources", "qemu=1", "--no-dashboard",
                               "--local-directory", str(tmp / f"dask-{name}")],
                        {**self.env, "LAB_CACHE": str(self.cache(name))})
        with distributed.Client(self.address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)

    def cache(self, name: str) -> Path:
        return self.tmp / f"cache-{name}"

    def _start(self, name: str, argv: list[str], env: dict) -> None:
        log = open(self.tmp / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def running_guest(self) -> str | None:
        """The worker one of whose guests is running now (by its QEMU's LAB_CACHE)."""
        for proc in Path("/proc").iterdir():
            try:
                if b"qemu-system" not in (proc / "cmdline").read_bytes():
                    continue
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for name in ("w1", "w2"):
                if SESSION_MARK.encode() in environ and \
                        f"LAB_CACHE={self.cache(name)}".encode() in environ:
                    return name
        return None

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()
    assert all(p.poll() is not None for p in c.procs.values())
    assert not lab_qemus()


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _cells(results: dict) -> dict:
    return {c["id"]: (c["status"], c["kpti_active"]) for c in results["cells"]}


def test_a_matrix_on_two_workers_gives_the_local_runs_verdicts(cluster, tmp_path):
    scenario = tmp_path / "cluster.yaml"
    scenario.write_text(SCENARIO)
    local = lab("run", str(scenario), "--out", str(tmp_path / "local"), "-j2")
    assert local.returncode == 0, local.stderr
    remote = lab("run", str(scenario), "--out", str(tmp_path / "remote"),
                 env={"LAB_CLUSTER": cluster.address})
    assert remote.returncode == 0, remote.stderr + (tmp_path / "w1.log").read_text()
    results = _results(tmp_path / "remote")
    assert _cells(results) == _cells(_results(tmp_path / "local"))
    assert len(results["cells"]) == 4
    names = {w["name"] for c in results["cells"] for w in c["workers"]}
    assert names == {"w1", "w2"}
    for c in results["cells"]:
        assert c["accel"] == "tcg"
        (boot,) = c["boots"]
        assert (tmp_path / "remote" / boot["logs"]["console"]).stat().st_size > 0
        fetched = {f["from"] for f in boot["worker"]["fetched"]}
        assert fetched <= {"pulled", "worker's cache"}       # no shared filesystem
    for name in ("w1", "w2"):                                 # each has its own copies
        assert list((cluster.cache(name) / "artifacts").glob("*-Image"))
    assert not lab_qemus()


def test_a_worker_killed_in_the_middle_of_a_boot_does_not_lose_the_run(cluster, tmp_path):
    scenario = tmp_path / "cluster.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(scenario), "--out",
                             str(out), "--cluster", cluster.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (victim := cluster.running_guest()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim, "no guest started on a worker"
    time.sleep(0.5)                                           # into the boot
    cluster.kill(victim)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    results = _results(out)
    assert [c["status"] for c in results["cells"]] == ["pass"] * 4
    notes = [b["note"] for c in results["cells"] for b in c["boots"] if b["note"]]
    assert len(notes) == 1 and "ran again" in notes[0] and "was lost" in notes[0]
    assert not lab_qemus()
