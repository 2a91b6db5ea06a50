"""The Dask executor (lab.run.cluster) on an in-process LocalCluster, with fake guests:
boots as tasks, logs shipped back, artifacts by content, lost boots as errors,
Ctrl-C cancelling what has not started. The real two-worker cluster, with real
kernels and a killed worker, is tests/integration/test_cluster.py."""

from __future__ import annotations

import json
import pickle
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lab.core.deadline import Deadline
from lab.core.errors import InfraError, UserError
from lab.core.results import Status
from lab.host import cache
from lab.run import cluster, runner
from tests.unit.test_runner import KBUILD, Events, cell, lab, run, scenario  # noqa: F401

distributed = pytest.importorskip("distributed")   # lab[cluster]: bootstrap installs it

P, E = Status.PASS, Status.ERROR


@pytest.fixture(scope="module")
def client():
    """One in-process cluster for the module: two workers with one guest slot each."""
    with cluster._client("local:2") as c:
        yield c


@pytest.fixture
def kernel(tmp_path, monkeypatch, lab):  # noqa: F811
    """Fake guests (test_runner's lab) booting a kernel whose files exist."""
    kdir = tmp_path / "kernel"
    kdir.mkdir()
    (kdir / "Image").write_bytes(b"kernel" * 1000)
    (kdir / "initramfs.cpio").write_bytes(b"initramfs" * 1000)
    kbuild = replace(KBUILD, image=kdir / "Image", initramfs=kdir / "initramfs.cpio")
    monkeypatch.setattr(runner, "ensure_kernels", lambda cells, progress_for, drivers=(),
                        source=None: {(c.arch, c.variant): kbuild for c in cells})
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    return kbuild


def _cells(n: int, repeat: int = 1):
    return scenario(run("work"), cells=[cell(f"c{i}") for i in range(n)], repeat=repeat)


def _run(client, tmp_path, s, **opts):
    executor = cluster.DaskExecutor(client)
    try:
        return runner.run([s], runner.Options(out=tmp_path / "out", **opts), Events(), None,
                          executor=executor), executor
    finally:
        executor.close()


# ---------------------------------------------------------------- boots as tasks

def test_a_run_on_the_cluster_gives_what_the_local_pool_gives(client, kernel, tmp_path):
    s = _cells(3, repeat=2)
    local = runner.run([s], runner.Options(out=tmp_path / "local", seed=5), Events(), None)
    remote, _ = _run(client, tmp_path, s, seed=5)
    assert [(c.id, c.status, len(c.boots)) for c in remote.cells] == [
        (c.id, c.status, len(c.boots)) for c in local.cells]
    assert remote.schedule == local.schedule
    # results.json says where the boots ran: the cluster and its guest slots, not -j
    assert local.executor["kind"] == "local" and local.jobs == local.executor["jobs"]
    assert remote.executor["kind"] == "dask" and remote.executor["scheduler"]
    assert remote.jobs == remote.executor["jobs"] == sum(remote.executor["workers"].values())
    assert remote.to_json()["executor"] == remote.executor
    for c in remote.cells:
        assert all(b.worker["address"].startswith("inproc://") for b in c.boots)
        assert {w["name"] for w in c.workers} <= {"0", "1"}
        for path in c.logs.values():        # shipped back, where results.json says
            if path.endswith("console.log"):
                assert (tmp_path / "out" / path).read_text().startswith("boot")
        saved = json.loads((tmp_path / "out" / "s" / c.id / "result.json").read_text())
        assert saved["workers"] == c.workers
    names = {w["name"] for c in remote.cells for w in c.workers}
    assert names == {"0", "1"}                # both workers ran boots


def test_no_worker_runs_more_boots_than_its_guest_slots(client, kernel, lab, tmp_path):  # noqa: F811
    lock, running, most = threading.Lock(), [0], [0]

    def busy(g):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1
        return "ok", 0
    lab.commands = {"work": busy}
    result, _ = _run(client, tmp_path, _cells(6))
    assert [c.status for c in result.cells] == [P] * 6
    assert most[0] == 2                       # two workers, qemu=1 each


def test_a_boot_task_travels_without_its_event_callback(kernel):
    task = runner.BootTask(_cells(1), cell("c0"), kernel, runner.Options(out=Path("/o")),
                           0, 1, 0, 0.0, event=lambda *a, **k: None)
    back = pickle.loads(pickle.dumps(task))
    assert back.event is runner._quiet and back.cell == task.cell and back.kbuild == kernel


def test_a_boot_the_cluster_cannot_run_is_an_error_that_says_why(client, kernel, tmp_path):
    executor = cluster.DaskExecutor(client)
    executor._code = "not this lab"           # what a worker with another checkout sees
    try:
        result = runner.run([_cells(2)], runner.Options(out=tmp_path / "out"), Events(),
                            None, executor=executor)
    finally:
        executor.close()
    assert [c.status for c in result.cells] == [E, E]
    assert "runs other lab code than the client" in result.cells[0].error_message
    assert "the cluster could not run this boot" in result.cells[0].error_message


def test_with_no_guest_slots_in_the_cluster_the_boots_are_errors(kernel, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(cluster, "WORKER_WAIT_S", 0.2)
    with distributed.LocalCluster(n_workers=1, processes=False,
                                  dashboard_address="127.0.0.1:0") as lc, \
            distributed.Client(lc) as c:
        result, _ = _run(c, tmp_path, _cells(2, repeat=2))
    assert [c.status for c in result.cells] == [E, E]
    assert "no worker with guest slots" in result.cells[0].error_message


def test_ctrl_c_cancels_the_boots_not_back_yet(client, kernel, lab, tmp_path):  # noqa: F811
    lab.commands = {"work": lambda g: (time.sleep(0.3), ("ok", 0))[1]}
    executor = cluster.DaskExecutor(client)
    s = _cells(4)
    tasks = [runner.BootTask(s, c, kernel, runner.Options(out=tmp_path), 0, 1, i, time.time())
             for i, c in enumerate(s.cells)]
    results = executor.map_unordered(runner.run_boot_task, tasks)
    next(results)
    with pytest.raises(KeyboardInterrupt):
        results.throw(KeyboardInterrupt())
    assert not executor._futures and executor.drain(1) == []
    deadline = Deadline(10)
    while any(client.processing().values()) and not deadline.expired():
        time.sleep(0.05)
    assert not any(client.processing().values())
    executor.close()


# ---------------------------------------------------------------- artifacts

def _offer(tmp_path: Path, data: bytes = b"an image" * 100) -> cluster.Offer:
    src = tmp_path / "Image"
    src.write_bytes(data)
    return cluster.offer_of(src, "run")


def test_a_worker_in_the_clients_process_uses_the_clients_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    offer = _offer(tmp_path)
    path, seen = cluster.localize(offer, pull=lambda key: pytest.fail("pulled"),
                                  deadline=Deadline(5))
    assert path == offer.path and seen["from"] == "client's path"


def test_a_missing_artifact_is_pulled_checked_and_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    offer = replace(_offer(tmp_path), origin="another-host:1")   # another machine's path
    data = offer.path.read_bytes()
    pulls = []
    path, seen = cluster.localize(offer, lambda key: pulls.append(key) or data, Deadline(5))
    assert path == cluster.artifact_path(offer) and path.read_bytes() == data
    assert pulls == [offer.key] and seen["from"] == "pulled" and seen["bytes"] == len(data)
    assert cache.verify(path, cache.itself)   # a cache entry, with its manifest
    again, seen = cluster.localize(offer, lambda key: pytest.fail("pulled"), Deadline(5))
    assert again == path and seen["from"] == "worker's cache"
    path.write_bytes(b"x" + data[1:])         # a flipped byte: pulled again
    _, seen = cluster.localize(offer, lambda key: data, Deadline(5))
    assert seen["from"] == "pulled" and path.read_bytes() == data


def test_bytes_that_are_not_the_artifact_are_refused_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    offer = _offer(tmp_path)
    offer.path.unlink()
    with pytest.raises(InfraError, match="sha256 differs"):
        cluster.localize(offer, lambda key: b"something else", Deadline(5))
    assert not cluster.artifact_path(offer).exists()


def test_a_task_pulls_a_published_artifact_and_waits_for_one_offered_late(client):
    held = client.scatter({"lab-artifact-test": b"bytes" * 1000})
    client.publish_dataset(**held)
    assert client.submit(cluster._pull, "lab-artifact-test", Deadline(10),
                         pure=False).result(timeout=10) == b"bytes" * 1000
    late = client.submit(cluster._pull, "lab-artifact-late", Deadline(10), pure=False)
    time.sleep(1)
    client.publish_dataset(**client.scatter({"lab-artifact-late": b"late"}))
    assert late.result(timeout=10) == b"late"
    with pytest.raises(InfraError, match="did not come from the cluster within 1 s"):
        client.submit(cluster._pull, "lab-artifact-never", Deadline(1),
                      pure=False).result(timeout=10)
    for name in ("lab-artifact-test", "lab-artifact-late"):
        client.unpublish_dataset(name)


# ---------------------------------------------------------------- logs and addresses

def test_logs_travel_with_their_modes_and_never_outside_out(tmp_path):
    src = tmp_path / "worker"
    (src / "s" / "cell").mkdir(parents=True)
    (src / "s" / "cell" / "console.log").write_text("hello")
    (src / "s" / "cell" / "reproduce.sh").write_text("#!/bin/sh\n")
    (src / "s" / "cell" / "reproduce.sh").chmod(0o755)
    files = cluster.collect(src)
    cluster.write_logs(tmp_path / "out", files)
    assert (tmp_path / "out" / "s" / "cell" / "console.log").read_text() == "hello"
    assert (tmp_path / "out" / "s" / "cell" / "reproduce.sh").stat().st_mode & 0o777 == 0o755
    for bad in ("../escape", "/etc/passwd", ""):
        with pytest.raises(InfraError, match="outside --out"):
            cluster.write_logs(tmp_path / "out", {bad: (0o644, b"x")})


def test_local_takes_a_worker_count_and_anything_else_is_a_scheduler_address():
    assert cluster.local_workers("local:3") == 3
    assert cluster.local_workers("local") >= 1
    assert cluster.local_workers("tcp://10.0.0.1:8786") is None
    for bad in ("local:0", "local:x", "local:65"):
        with pytest.raises(UserError, match="local:N"):
            cluster.local_workers(bad)


def test_a_scheduler_that_does_not_answer_is_an_infrastructure_error(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_S", 1.0)
    with pytest.raises(InfraError, match="no Dask scheduler answered"):
        with cluster.connect("tcp://127.0.0.1:9"):
            pass


def test_lab_run_checks_cluster_before_any_build_and_reads_lab_cluster(tmp_path):
    from tests.conftest import ROOT
    from tests.unit.inprocess import lab as lab_cli
    kpti = str(ROOT / "scenarios" / "kpti.yaml")
    for args, env in (([kpti, "--cluster", "local:0"], {}), ([kpti], {"LAB_CLUSTER": "local:x"})):
        done = lab_cli("run", *args, "--out", str(tmp_path / "out"), env=env, timeout=60)
        assert done.returncode == 2 and "local:N takes N from 1 to 64" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "out").exists()
