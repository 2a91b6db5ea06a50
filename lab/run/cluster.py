"""The runner's boots on a Dask distributed cluster: the only `dask`/`distributed` import.

    with cluster.connect("tcp://host:8786") as executor:     # or "local", "local:2"
        runner.run(scenarios, opts, event, progress_for, executor=executor)

The unit of a Dask task is one boot (runner.BootTask), as it is for the local pool:
the runner's interleaved schedule (issue 11) decides the order, and the executor
takes boots from it only as the cluster's guest slots free up, so the cluster runs
them in that order and a cell that erred still skips its later boots. A boot is
also the unit a lost worker costs: it runs again once elsewhere (the scheduler's
allowed-failures, 1 for `local`), else it is an error that says its worker died.

No shared filesystem:
- Kernels and initramfs images go by content. The client scatters each artifact
  once per run into the cluster's memory (one copy, never in the task graph) and
  publishes it as the dataset lab-artifact-<sha256 prefix>-<run>; a task gets that name,
  the sha256 and the client's path. On its worker the boot uses, in order: the client's path if the
  worker is in the client's process (`local`) and the file has that sha256 (a shared
  filesystem is not assumed); the worker's cache entry
  LAB_CACHE/artifacts/<sha256>-<name> (checked against its manifest on every use);
  else it pulls the bytes from the cluster, checks their sha256 and stores them as
  that cache entry (atomic, see build.cache.entry).
- A boot writes its logs into a directory of its own on the worker; they come back
  as bytes with its result, and the client writes them under --out, so the
  relative log paths in results.json hold.

Capacity and placement: a worker's guest slots are its `qemu` resource (dask worker
--resources qemu=N); every boot takes one. Tags are resources too: a boot of an
aarch64 cell also takes one `aarch64`, and a boot with --accel kvm one `kvm`, when
some worker declares that resource (then only those workers run such boots).

Faults: a boot's deadline is inside the task (Dask cannot stop a running task). A
cancelled boot (Ctrl-C on the client) has its QEMU killed by a watcher on its
worker. A boot that brings nothing back within its deadline and an allowance for
queueing and transfer is an error, so the run always ends with every cell.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import dask
import distributed
from distributed.scheduler import KilledWorker

from lab.core.deadline import Deadline
from lab.core.errors import InfraError, UserError
from lab.core.model import KernelBuild
from lab.core.paths import cache_dir
from lab.guest import qemu
from lab.host import cache
from lab.run.runner import BootOutcome, BootTask, lost_boot

#: The resource every boot takes one of: a worker's guest slots.
SLOTS = "qemu"
#: The event topic a boot's task logs its start to (who ran it, how many times).
STARTS = "lab-boot-start"
#: How long a new run waits for the first worker with guest slots.
WORKER_WAIT_S = 60.0
#: A boot's allowance beyond its own deadline for its artifacts to arrive.
FETCH_S = 300.0
#: And for waiting its turn on a worker (a rerun after a lost worker waits for one boot).
QUEUE_S = 60.0
#: How often the client looks at overdue boots, and a worker at cancelled ones.
POLL_S = 0.5
#: Connecting to a scheduler.
CONNECT_S = 30.0
#: A worker's log files that come back with a boot: at most this many bytes in all.
MAX_LOG_BYTES = 512 * 1024 * 1024

logging.getLogger("distributed").setLevel(logging.ERROR)


# ---------------------------------------------------------------- artifacts

@dataclass(frozen=True)
class Offer:
    """An artifact a boot needs: its content, where the client has it, and the key of
    its bytes in the cluster."""

    sha256: str
    name: str
    path: Path
    key: str
    #: The process that offers it: a worker in that process (local) uses path itself.
    origin: str = ""


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def offer_of(path: Path, run: str) -> Offer:
    """path offered by this run (its key is the run's: two labs on one cluster, or two
    runs in one process, never release each other's)."""
    sha = cache.file_sha(path)
    return Offer(sha, path.name, path, f"lab-artifact-{sha[:16]}-{run}", this_process())


def artifact_path(offer: Offer) -> Path:
    """A worker's cache entry for an artifact."""
    return cache_dir() / "artifacts" / f"{offer.sha256}-{offer.name}"


def localize(offer: Offer, pull: Callable[[str], bytes], deadline: Deadline
             ) -> tuple[Path, dict[str, Any]]:
    """The artifact as a file on this machine, checked by its sha256; what it cost.
    pull(key) brings its bytes from the cluster, if nothing here has them."""
    started = time.monotonic()
    with contextlib.suppress(OSError):
        if offer.origin == this_process() and cache.file_sha(offer.path) == offer.sha256:
            return offer.path, {"name": offer.name, "from": "client's path"}
    pulled = [0]

    def fetch(scratch: Path) -> None:
        data = pull(offer.key)
        if hashlib.sha256(data).hexdigest() != offer.sha256:
            raise InfraError(f"{offer.name}: the bytes that came from the cluster are not "
                             f"the artifact (sha256 differs from {offer.sha256})")
        scratch.write_bytes(data)
        pulled[0] = len(data)

    path = cache.entry(artifact_path(offer), fetch, record=cache.itself, wait=deadline,
                       lock=f"artifact-{offer.sha256[:16]}")
    seen: dict[str, Any] = {"name": offer.name,
                            "from": "pulled" if pulled[0] else "worker's cache"}
    if pulled[0]:
        seen |= {"bytes": pulled[0], "seconds": round(time.monotonic() - started, 3)}
    return path, seen


def localize_kernel(kbuild: KernelBuild, offers: dict[str, Offer],
                    pull: Callable[[str], bytes], deadline: Deadline
                    ) -> tuple[KernelBuild, list[dict[str, Any]]]:
    """kbuild with its image and initramfs as files on this machine."""
    image, seen_image = localize(offers["image"], pull, deadline)
    initramfs, seen_initramfs = localize(offers["initramfs"], pull, deadline)
    return replace(kbuild, image=image, initramfs=initramfs), [seen_image, seen_initramfs]


def code_id() -> str:
    """What the lab's Python code is: a worker must run the client's."""
    root = Path(qemu.__file__).resolve().parents[1]
    return cache.sha(*(part for p in sorted(root.rglob("*.py"))
                       for part in (str(p.relative_to(root)), p.read_bytes())))


# ---------------------------------------------------------------- logs

#: A boot's log files as they travel: relative path -> (permission bits, contents).
Logs = dict[str, tuple[int, bytes]]


def collect(root: Path) -> Logs:
    """Every file under root by its relative path: a boot's logs, to ship."""
    files, total = {}, 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        total += st.st_size
        if total > MAX_LOG_BYTES:
            raise InfraError(f"the boot's logs are over {MAX_LOG_BYTES:,} bytes")
        files[path.relative_to(root).as_posix()] = (st.st_mode & 0o777, path.read_bytes())
    return files


def write_logs(out: Path, files: Logs) -> None:
    """A boot's shipped logs under out, where results.json says they are."""
    for name, (mode, data) in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise InfraError(f"a worker sent a log file named {name!r}, outside --out")
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode & 0o755)


# ---------------------------------------------------------------- on a worker

def _pull(key: str, deadline: Deadline) -> bytes:
    """An artifact's bytes, from whichever worker holds them (the client publishes
    each under its key). Tried again until the deadline: a worker that held them
    may have died, and the client then offers them again."""
    client = distributed.get_client()
    while True:
        try:
            data = client.get_dataset(key).result(timeout=min(deadline.remaining(), 30.0))
            if isinstance(data, bytes):
                return data
            problem = f"not bytes but {type(data).__name__}"
        except Exception as exc:    # a lost holder, a name not (yet) published, a timeout
            problem = f"{type(exc).__name__}: {exc}"
        if deadline.expired():
            raise InfraError(f"{key}: the artifact did not come from the cluster within "
                             f"{deadline.seconds:g} s ({problem})")
        time.sleep(POLL_S)


@contextlib.contextmanager
def _killed_when_cancelled(worker: distributed.Worker, key: Any) -> Iterator[None]:
    """A watcher that kills this thread's QEMUs once the client cancels the task."""
    thread, done = threading.get_ident(), threading.Event()

    def watch() -> None:
        while not done.wait(POLL_S):
            ts = worker.state.tasks.get(key)
            if ts is None or ts.state in ("cancelled", "released", "forgotten"):
                qemu.kill_all(thread=thread)
                return
    watcher = threading.Thread(target=watch, name="lab-cancel-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def on_worker(fn: Callable[[BootTask], BootOutcome], task: BootTask, offers: dict[str, Offer],
              code: str) -> tuple[BootOutcome, Logs]:
    """A boot on a worker: its kernel made local, its logs in a directory of its own,
    shipped back as bytes with its outcome."""
    worker = distributed.get_worker()
    key = worker.get_current_task()
    where = {"name": str(worker.name), "address": worker.address, "host": socket.gethostname()}
    worker.log_event(STARTS, {"key": str(key), **where})
    if code != code_id():
        raise InfraError(f"worker {worker.address} runs other lab code than the client: "
                         "install the client's checkout there")
    deadline = Deadline(FETCH_S)
    kbuild, fetched = localize_kernel(task.kbuild, offers, lambda k: _pull(k, deadline),
                                      deadline)
    with tempfile.TemporaryDirectory(prefix="lab-boot-") as tmp, \
            _killed_when_cancelled(worker, key):
        outcome = fn(replace(task, kbuild=kbuild, opts=replace(task.opts, out=Path(tmp))))
        files = collect(Path(tmp))
    outcome.boot.worker = {**where, "fetched": fetched}
    return outcome, files


# ---------------------------------------------------------------- on the client

class DaskExecutor:
    """The runner's Executor on a Dask cluster (see the module's docstring)."""

    def __init__(self, client: distributed.Client, address: str = ""):
        self.client = client
        self.address = address
        self.run_id = uuid.uuid4().hex[:8]
        self._code = code_id()
        self._offers: dict[Path, Offer] = {}
        self._held: dict[str, distributed.Future] = {}
        self._futures: dict[distributed.Future, tuple[BootTask, Deadline]] = {}
        self._starts: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        #: Seconds each artifact took to reach the cluster, by name.
        self.scattered: dict[str, float] = {}
        client.subscribe_topic(STARTS, self._started)

    def _started(self, event: tuple[float, dict[str, Any]]) -> None:
        with self._lock:
            self._starts.setdefault(event[1]["key"], []).append(event[1])

    # -- capacity and placement

    def workers(self) -> dict[str, dict[str, Any]]:
        return dict(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def capacity(self, wait: bool) -> int:
        """Guest slots in the cluster now; with wait, waits (bounded) while there are none."""
        deadline = Deadline(WORKER_WAIT_S if wait else 0)
        while True:
            slots = sum(int(w.get("resources", {}).get(SLOTS, 0))
                        for w in self.workers().values())
            if slots or deadline.expired():
                return slots
            time.sleep(POLL_S)

    def describe(self) -> dict[str, Any]:
        """The cluster as results.json records it: its scheduler and each worker's
        guest slots (jobs: their sum, the run's real parallelism)."""
        slots = {address: int(w.get("resources", {}).get(SLOTS, 0))
                 for address, w in sorted(self.workers().items())}
        scheduler = self.address or str(self.client.scheduler_info().get("address", ""))
        return {"kind": "dask", "scheduler": scheduler, "workers": slots,
                "jobs": sum(slots.values())}

    def resources(self, task: BootTask) -> dict[str, float]:
        """One guest slot, and one of each tag the boot needs that the cluster knows."""
        known = {r for w in self.workers().values() for r in w.get("resources", {})}
        tags = [task.cell.arch] + (["kvm"] if task.opts.accel == "kvm" else [])
        return {SLOTS: 1, **{t: 1 for t in tags if t in known}}

    # -- artifacts

    def offers(self, kbuild: KernelBuild) -> dict[str, Offer]:
        """The kernel's image and initramfs, each scattered into the cluster once."""
        assert kbuild.initramfs is not None, "guest images have their initramfs"
        return {"image": self._offer(kbuild.image), "initramfs": self._offer(kbuild.initramfs)}

    def _offer(self, path: Path) -> Offer:
        if path not in self._offers:
            offer = offer_of(path, self.run_id)
            if offer.key not in self._held:
                self._scatter(offer)
            self._offers[path] = offer
        return self._offers[path]

    def _scatter(self, offer: Offer) -> None:
        """The artifact's bytes into the cluster's memory, under its key (one copy)."""
        started = time.monotonic()
        self._held |= self.client.scatter({offer.key: offer.path.read_bytes()})
        self.client.publish_dataset(override=True, **{offer.key: self._held[offer.key]})
        self.scattered[offer.name] = time.monotonic() - started

    def _reoffer(self) -> None:
        """Scatter again what the cluster lost with a worker that held it: boots that
        wait for it (a rerun of the lost worker's boot) then get it under the same key."""
        for offer in self._offers.values():
            if self._held[offer.key].status in ("lost", "error", "cancelled"):
                self._scatter(offer)

    # -- boots

    def submit(self, fn: Callable[[BootTask], BootOutcome], task: BootTask) -> None:
        key = f"lab-boot-{self.run_id}-{task.position}-{task.cell.id}-{task.n}"
        future = self.client.submit(on_worker, fn, task, self.offers(task.kbuild), self._code,
                                    key=key, resources=self.resources(task), retries=1,
                                    priority=-task.position, pure=False)
        budget = task.cell_s / task.repeat * 2 + FETCH_S + QUEUE_S
        self._futures[future] = (task, Deadline(budget))

    def map_unordered(self, fn: Callable[[BootTask], BootOutcome],
                      items: Iterable[BootTask]) -> Iterator[BootOutcome]:
        """Boots as the cluster's slots free up, in the order items come; outcomes as
        they finish. Any exception (Ctrl-C) cancels every boot not back yet."""
        todo = iter(items)
        try:
            yield from self._top_up(fn, todo)
            while self._futures:
                for future in self._finished():
                    task, _ = self._futures.pop(future)
                    yield self._outcome(future, task)
                self._reoffer()
                yield from self._overdue()
                yield from self._top_up(fn, todo)
        except BaseException:
            self.client.cancel(list(self._futures), reason="the lab run was stopped")
            self._futures.clear()
            raise

    def _finished(self) -> list[distributed.Future]:
        """The boots that are back, waiting at most POLL_S for the first."""
        try:
            return list(distributed.wait(list(self._futures), timeout=POLL_S,
                                         return_when="FIRST_COMPLETED").done)
        except TimeoutError:
            return []

    def _top_up(self, fn: Callable[[BootTask], BootOutcome],
                todo: Iterator[BootTask]) -> Iterator[BootOutcome]:
        """Submit boots until every slot has one. With no slot in the cluster and no
        boot under way, the boots left are errors: the run still ends."""
        slots = self.capacity(wait=not self._futures)
        while len(self._futures) < slots or not (slots or self._futures):
            task = next(todo, None)
            if task is None:
                return
            if slots:
                self.submit(fn, task)
            else:
                yield lost_boot(task, "the cluster has no worker with guest slots "
                                      f"({SLOTS}=N resources) to run this boot")

    def _overdue(self) -> Iterator[BootOutcome]:
        """Boots past their deadline and allowance: cancelled, and errors."""
        for future, (task, deadline) in list(self._futures.items()):
            if deadline.expired():
                del self._futures[future]
                future.cancel(reason="overdue")
                yield lost_boot(task, f"no result from the cluster within {deadline.seconds:g} "
                                      "s (the boot's deadline, and time to queue and fetch)")

    def _outcome(self, future: distributed.Future, task: BootTask) -> BootOutcome:
        """A finished boot's outcome with its logs written under --out; a boot the
        cluster lost is an error that says how."""
        try:
            outcome, files = future.result()
        except KilledWorker as exc:
            return lost_boot(task, f"the workers that ran this boot died during it "
                                   f"{exc.allowed_failures + 1} times: {exc}")
        except Exception as exc:
            return lost_boot(task, f"the cluster could not run this boot: "
                                   f"{type(exc).__name__}: {exc}")
        try:
            write_logs(task.opts.out, files)
        except InfraError as exc:
            return lost_boot(task, str(exc))
        with self._lock:
            starts = self._starts.pop(str(future.key), [])
        if len(starts) > 1:
            lost = ", ".join(s["address"] for s in starts[:-1])
            outcome.boot.note = (f"ran again on {starts[-1]['address']} after the worker "
                                 f"running it ({lost}) was lost")
        return outcome

    def drain(self, seconds: float) -> list[BootOutcome]:
        """Cancelled boots bring nothing back (their workers kill their QEMUs)."""
        return []

    def close(self) -> None:
        """Unpublish and release the artifacts: the cluster's memory is the workers'."""
        self.client.unsubscribe_topic(STARTS)
        for key in self._held:
            with contextlib.suppress(KeyError):
                self.client.unpublish_dataset(key)
        self.client.cancel(list(self._held.values()))
        self._held.clear()


# ---------------------------------------------------------------- connecting

def local_workers(address: str) -> int | None:
    """N for "local:N", os.cpu_count() for "local", None for a scheduler's address."""
    name, sep, count = address.partition(":")
    if name != "local":
        return None
    if not sep:
        return os.cpu_count() or 1
    if not count.isdigit() or not 1 <= int(count) <= 64:
        raise UserError(f"--cluster {address}: local:N takes N from 1 to 64")
    return int(count)


@contextlib.contextmanager
def _client(address: str) -> Iterator[distributed.Client]:
    """A client of the scheduler at address, or of a LocalCluster in this process:
    its workers are threads here, each with one guest slot, so their QEMUs are this
    process's children (Ctrl-C kills them as in a local run) and share its cache."""
    workers = local_workers(address)
    if workers is None:
        try:
            client = distributed.Client(address, timeout=CONNECT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InfraError(f"--cluster {address}: no Dask scheduler answered there "
                             f"({type(exc).__name__}: {exc})") from None
        with client:
            yield client
        return
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=False, resources={SLOTS: 1},
            dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        yield client


def check_code(client: distributed.Client) -> None:
    """Every worker runs the client's lab code (a boot pickled here is read there)."""
    mine = code_id()
    other = sorted(w for w, theirs in client.run(code_id).items() if theirs != mine)
    if other:
        raise UserError(f"--cluster: worker(s) {', '.join(other)} run other lab code than "
                        "this client: install this checkout there (pip install -e '.[cluster]')")


@contextlib.contextmanager
def connect(address: str) -> Iterator[DaskExecutor]:
    """The runner's executor on the cluster at address ("local[:N]" starts one here)."""
    with _client(address) as client:
        check_code(client)
        executor = DaskExecutor(client, address)
        try:
            yield executor
        finally:
            executor.close()
