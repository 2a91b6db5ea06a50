"""The runner's orchestration with fake guests: no kernel, no QEMU. What a cell's
boots and steps become, when result.json is written, and how the executor
schedules and stops."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lab.artifacts import build
from lab.core.errors import GuestPanic, GuestTimeout, InfraError, Interrupted, UserError
from lab.core.model import (
    Cell,
    CommandResult,
    HostFacts,
    KernelBuild,
    KernelMessage,
    KernelVariant,
    Metric,
    Scenario,
    Selector,
)
from lab.core.results import CellResult, Status
from lab.guest import qemu
from lab.run import runner
from lab.scenario.steps.asserts import FactAssert, MetricAssert
from lab.scenario.steps.run import Run
from tests.unit.fakes import FakeGuest

P, F, E, S = Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP
VARIANT = KernelVariant("nokpti", ())
KBUILD = KernelBuild("aarch64", "nokpti", "0" * 64, Path("/nonexistent/Image"),
                     Path("/nonexistent/.config"), Path("/nonexistent"), "6.1.0-lab",
                     Path("/nonexistent/initramfs.cpio"))
OPTIONS = {"CONFIG_UNMAP_KERNEL_AT_EL0": "not set"}


class FakeLab:
    """What the fake guests of one test answer, and every guest the runner made."""

    def __init__(self):
        self.commands: dict = {}
        #: guest -> an exception to raise while booting, or None
        self.boot_error = lambda guest: None
        #: guest -> None, called as it boots (to look at the world at that moment)
        self.on_boot = lambda guest: None
        self.guests: list = []
        self.killed = 0

    def guest_class(self) -> type:
        lab = self

        class Guest(FakeGuest):
            def __init__(self, build, cmdline=(), logdir=None, **options):
                super().__init__(lab.commands)
                self.build, self.cmdline, self.logdir = build, tuple(cmdline), logdir
                self.options, self.closed = options, False
                lab.guests.append(self)

            def __enter__(self):
                self.logdir.mkdir(parents=True, exist_ok=True)
                (self.logdir / "console.log").write_text(f"boot {' '.join(self.cmdline)}\n")
                lab.on_boot(self)
                error = lab.boot_error(self)
                if error:
                    self.closed = True
                    raise error
                return self

            def __exit__(self, *exc):
                self.closed = True

        return Guest


@pytest.fixture
def lab(monkeypatch) -> FakeLab:
    fake = FakeLab()
    monkeypatch.setattr(runner, "Guest", fake.guest_class())
    monkeypatch.setattr(build, "kernel_meta", lambda kbuild: {"options": OPTIONS})
    monkeypatch.setattr(runner, "ensure_kernels",
                        lambda cells, progress_for, drivers=(), source=None: {
                            (c.arch, c.variant): KBUILD for c in cells})
    monkeypatch.setattr(runner, "host_facts", lambda: HostFacts(cores=2))

    def kill_all():
        fake.killed += 1
    monkeypatch.setattr(qemu, "kill_all", kill_all)
    return fake


def cell(cmdline="default", words=(), arch="aarch64") -> Cell:
    return Cell(arch, "nokpti", cmdline, tuple(words), VARIANT)


def scenario(*steps, cells=None, repeat=1, name="s") -> Scenario:
    return Scenario(name, "", Path(f"{name}.yaml"), tuple(cells or (cell(),)), tuple(steps),
                    repeat=repeat, step_timeout=5)


def run(command: str, name: str = "", **kw) -> Run:
    return Run(name=name or command, line=1, command=command, **kw)


class Events:
    def __init__(self):
        self.seen: list[tuple[str, dict]] = []

    def __call__(self, cell, **kw):
        self.seen.append((cell.id, kw))


def run_cell(s: Scenario, tmp_path: Path, c: Cell | None = None, **opts) -> CellResult:
    return runner.run_cell(s, c or s.cells[0], KBUILD, runner.Options(out=tmp_path, **opts),
                           Events())


def metric(name: str) -> Metric:
    return Metric(name, rf"^METRIC {name} (\S+)")


def statuses(result: CellResult) -> list[tuple[str, int, Status]]:
    return [(st.name, st.boot, st.status) for st in result.steps]


def panic(guest):
    guest.kernel_faults.append(KernelMessage("panic", True, "Kernel panic - not syncing: x"))
    raise GuestPanic("Kernel panic - not syncing: x")


# ---------------------------------------------------------------- one cell

def test_a_passing_cell_records_facts_samples_config_and_writes_its_result(lab, tmp_path):
    lab.commands = {"bench": ("METRIC getppid_ns 1100 ns\nMETRIC getppid_ns 1200 ns\n", 0)}
    s = scenario(run("bench", metrics=(metric("getppid_ns"),)),
                 FactAssert(name="kpti", line=2, fact="kpti_active", equals=True))
    result = run_cell(s, tmp_path)
    assert result.status is P and statuses(result) == [("bench", 0, P), ("kpti", 0, P)]
    assert result.metrics == {"getppid_ns": [1100.0, 1200.0]}
    assert result.units == {"getppid_ns": "ns"} and result.config == OPTIONS
    assert result.boots[0].facts == lab.guests[0].facts and result.tainted == 0
    assert lab.guests[0].closed and lab.guests[0].build is KBUILD
    written = tmp_path / "s" / "aarch64-nokpti-default" / "result.json"
    # durations are rounded in the file
    assert CellResult.from_json(json.loads(written.read_text())).to_json() == result.to_json()


def test_the_guest_gets_the_cells_words_and_the_runs_options(lab, tmp_path):
    s = scenario(run("true"), cells=[cell("forced-on", ["kpti=1"])])
    s = replace(s, memory_mb=256, boot_timeout=7.0, sysctls=(("vm.overcommit_memory", "1"),))
    run_cell(s, tmp_path, accel="tcg", icount=True)
    g = lab.guests[0]
    assert g.cmdline == ("kpti=1",)
    assert g.options == {"accel": "tcg", "memory_mb": 256, "icount": True,
                         "sysctls": (("vm.overcommit_memory", "1"),),
                         "boot_deadline_s": pytest.approx(7.0, abs=0.1), "restore": True}
    assert g.logdir == tmp_path / "s" / "aarch64-nokpti-forced-on"


def test_the_cells_deadline_cuts_its_steps_short_and_ends_the_cell(lab, tmp_path):
    def slow(g):   # 0.6 s of work, within the deadline the guest was given (as Shell.run)
        timeout = g.ran[-1][1]
        time.sleep(min(0.6, timeout))
        if timeout < 0.6:
            raise GuestTimeout(f"command 'slow' (deadline {timeout:.2f} s)")
        return ("done", 0)
    lab.commands = {"slow": slow}
    s = replace(scenario(run("slow"), run("slow", name="again"), run("never")), cell_timeout=1.0)
    result = run_cell(s, tmp_path)
    assert statuses(result) == [("slow", 0, P), ("again", 0, E), ("never", 0, S)]
    assert lab.guests[0].ran[1][1] <= 0.45      # the step's 5 s, cut short by the cell's 1 s
    assert result.status is E and "deadline" in result.boots[0].error


def test_past_the_cells_deadline_no_step_starts(lab, tmp_path):
    lab.commands = {"slow": lambda g: (time.sleep(0.4), ("done", 0))[1]}
    s = replace(scenario(run("slow"), run("next")), cell_timeout=0.3)
    result = run_cell(s, tmp_path)
    assert statuses(result) == [("slow", 0, P), ("next", 0, E)]
    assert "the cell's deadline of 0.3 s passed" in result.boots[0].error


def test_a_cells_default_deadline_is_the_sum_of_its_boots_and_steps():
    s = scenario(run("a"), run("b", timeout=5), repeat=2)
    assert runner.cell_seconds(s, s.cells[0], 2) == 2 * (s.boot_timeout + 5 + 5 +
                                                         runner.SHUTDOWN_S)


def test_a_panic_in_a_step_errors_that_step_skips_the_rest_and_errors_the_cell(lab, tmp_path):
    lab.commands = {"crash": panic}
    s = scenario(run("first"), run("crash"), run("after"),
                 FactAssert(name="kpti", line=4, fact="kpti_active", equals=True))
    result = run_cell(s, tmp_path)
    assert statuses(result) == [("first", 0, P), ("crash", 0, E), ("after", 0, S),
                                ("kpti", 0, S)]
    assert result.status is E and not result.failed_to_boot
    assert result.steps[1].message == "Kernel panic - not syncing: x"
    assert result.error_message == "Kernel panic - not syncing: x"
    assert [f.kind for f in result.faults] == ["panic"]
    assert lab.guests[0].closed
    assert (tmp_path / "s" / "aarch64-nokpti-default" / "result.json").is_file()


def test_a_guest_that_does_not_boot_is_an_error_with_no_steps(lab, tmp_path):
    lab.boot_error = lambda g: GuestTimeout("no ready marker within 7 s")
    result = run_cell(scenario(run("true")), tmp_path)
    assert result.status is E and result.failed_to_boot and result.steps == []
    assert result.error_message == "no ready marker within 7 s"
    assert len(result.boots) == 1 and result.boots[0].facts is None


def test_an_infrastructure_error_in_a_step_is_an_error_that_ends_the_boot(lab, tmp_path):
    def silent(guest):
        raise InfraError("QMP query-status: no answer within 10 s")
    lab.commands = {"silent": silent}
    result = run_cell(scenario(run("silent"), run("next")), tmp_path)
    assert statuses(result) == [("silent", 0, E), ("next", 0, S)]
    assert result.status is E and "no answer within 10 s" in result.boots[0].error


def test_stop_on_fail_skips_the_steps_after_the_first_failure(lab, tmp_path):
    lab.commands = {"bad": ("no", 1)}
    s = scenario(run("good"), run("bad"), run("later"), run("last"))
    assert statuses(run_cell(s, tmp_path)) == [("good", 0, P), ("bad", 0, F),
                                               ("later", 0, P), ("last", 0, P)]
    stopped = run_cell(s, tmp_path, stop_on_fail=True)
    assert statuses(stopped) == [("good", 0, P), ("bad", 0, F), ("later", 0, S),
                                 ("last", 0, S)]
    assert stopped.status is F


def test_steps_run_only_in_the_cells_their_when_selects(lab, tmp_path):
    only_x86 = Run(name="x86", line=1, command="x86",
                   when=Selector((("arch", ("x86_64",)),)))
    s = scenario(run("all"), only_x86, cells=[cell(), cell(arch="x86_64")])
    assert [st.name for st in run_cell(s, tmp_path, s.cells[0]).steps] == ["all"]
    assert [st.name for st in run_cell(s, tmp_path, s.cells[1]).steps] == ["all", "x86"]


# ---------------------------------------------------------------- faults

def _warn(guest):
    guest.kernel_faults.append(KernelMessage("warning", False,
                                             "WARNING: CPU: 0 PID: 7 at x.c:1\nmore"))
    return ("done", 0)


def test_a_kernel_fault_during_a_step_fails_that_step_unless_it_allows_faults(lab, tmp_path):
    lab.commands = {"warns": _warn}
    result = run_cell(scenario(run("warns"), run("quiet")), tmp_path)
    assert statuses(result) == [("warns", 0, F), ("quiet", 0, P)]
    assert result.steps[0].message == "kernel warning: WARNING: CPU: 0 PID: 7 at x.c:1"
    assert [f.kind for f in result.faults] == ["warning"]
    allowed = run_cell(scenario(run("warns", allow_faults=True), run("quiet")), tmp_path)
    assert allowed.status is P and [f.kind for f in allowed.faults] == ["warning"]


def test_a_fault_from_before_a_step_is_not_blamed_on_it(lab, tmp_path):
    lab.on_boot = lambda g: g.kernel_faults.append(KernelMessage("warning", False, "boot"))
    result = run_cell(scenario(run("quiet")), tmp_path)
    assert result.status is P and len(result.faults) == 1


# ---------------------------------------------------------------- repeat

def test_repeat_boots_the_guest_again_with_its_own_logs_and_samples(lab, tmp_path):
    counter = iter(range(100))
    lab.commands = {"bench": lambda g: (f"METRIC n {next(counter)} ns\n", 0)}
    s = scenario(run("bench", metrics=(metric("n"),)),
                 MetricAssert(name="has n", line=2, metric="n", min=0))
    result = run_cell(s, tmp_path, repeat=3)
    assert [b.index for b in result.boots] == [0, 1, 2]
    assert [b.samples for b in result.boots] == [{"n": [0.0]}, {"n": [1.0]}, {"n": [2.0]}]
    assert result.metrics == {"n": [0.0, 1.0, 2.0]}
    assert statuses(result) == [("bench", 0, P), ("has n", 0, P), ("bench", 1, P),
                                ("has n", 1, P), ("bench", 2, P), ("has n", 2, P)]
    cdir = tmp_path / "s" / "aarch64-nokpti-default"
    assert [g.logdir for g in lab.guests] == [cdir / f"boot-{n}" for n in range(3)]
    assert result.logs["console-2"] == "s/aarch64-nokpti-default/boot-2/console.log"
    assert {k for k in result.logs} == {f"{n}-{i}" for n in runner.LOGS for i in range(3)}
    for name, path in result.logs.items():
        if name.startswith("console"):
            assert (tmp_path / path).is_file()


def test_repeat_comes_from_the_scenario_unless_the_run_says(lab, tmp_path):
    assert len(run_cell(scenario(run("true"), repeat=2), tmp_path).boots) == 2
    assert len(run_cell(scenario(run("true"), repeat=2), tmp_path, repeat=1).boots) == 1
    one = run_cell(scenario(run("true")), tmp_path)
    assert one.logs["console"] == "s/aarch64-nokpti-default/console.log"


def test_the_first_boot_that_errs_ends_the_cell(lab, tmp_path):
    boots = iter(range(100))
    lab.commands = {"maybe": lambda g: panic(g) if g.boot_no == 1 else ("ok", 0)}
    lab.on_boot = lambda g: setattr(g, "boot_no", next(boots))
    result = run_cell(scenario(run("maybe")), tmp_path, repeat=3)
    assert len(result.boots) == 2 and len(lab.guests) == 2
    assert [b.status for b in result.boots] == [P, E]


# ---------------------------------------------------------------- runs

def _two_cells():
    return scenario(run("work"), cells=[cell("a", ["panic"]), cell("b"), cell("c")])


def test_a_panicking_cell_does_not_stop_the_others(lab, tmp_path):
    lab.commands = {"work": lambda g: panic(g) if "panic" in g.cmdline else ("ok", 0)}
    events = Events()
    result = runner.run([_two_cells()], runner.Options(out=tmp_path, jobs=2), events,
                        progress_for=None)
    assert [(c.id, c.status) for c in result.cells] == [
        ("aarch64-nokpti-a", E), ("aarch64-nokpti-b", P), ("aarch64-nokpti-c", P)]
    assert result.status is E and result.host == HostFacts(cores=2) and result.jobs == 2
    done = {cid: kw["status"] for cid, kw in events.seen if kw.get("phase") == "done"}
    assert done == {"aarch64-nokpti-a": "error", "aarch64-nokpti-b": "pass",
                    "aarch64-nokpti-c": "pass"}


def test_a_bug_in_the_lab_errs_its_cell_keeps_the_traceback_and_the_run_goes_on(lab, tmp_path):
    def bug(g):
        if "panic" in g.cmdline:
            raise ValueError("a lab bug")
        return ("ok", 0)
    lab.commands = {"work": bug}
    result = runner.run([_two_cells()], runner.Options(out=tmp_path, jobs=2), Events(),
                        progress_for=None)
    assert [c.status for c in result.cells] == [E, P, P]
    assert [(st.name, st.status) for st in result.cells[0].steps] == [("work", E)]
    message = result.cells[0].error_message
    assert "internal error in the lab: ValueError: a lab bug" in message
    assert "ValueError: a lab bug" in (tmp_path / "s" / "aarch64-nokpti-a" /
                                       "internal-error.txt").read_text()


def test_each_result_json_is_written_when_its_cell_ends_not_with_the_run(lab, tmp_path):
    """With one job, cell b boots only after cell a ended: a's result.json is there."""
    seen = {}
    lab.on_boot = lambda g: seen.setdefault(g.logdir.name, sorted(
        p.parent.name for p in tmp_path.glob("s/*/result.json")))
    runner.run([_two_cells()], runner.Options(out=tmp_path, jobs=1), Events(), None)
    assert seen == {"aarch64-nokpti-a": [], "aarch64-nokpti-b": ["aarch64-nokpti-a"],
                    "aarch64-nokpti-c": ["aarch64-nokpti-a", "aarch64-nokpti-b"]}


def test_results_keep_the_scenario_order_whatever_order_cells_finish_in(lab, tmp_path):
    lab.on_boot = lambda g: time.sleep(0.2 if g.logdir.name.endswith("-a") else 0)
    result = runner.run([_two_cells()], runner.Options(out=tmp_path, jobs=3), Events(), None)
    assert [c.cell.cmdline for c in result.cells] == ["a", "b", "c"]
    assert result.executor == {"kind": "local", "jobs": 3} and result.jobs == 3


def test_only_selects_cells_and_a_selection_of_nothing_is_a_user_error(lab, tmp_path):
    only_b = runner.Options(out=tmp_path, only=Selector((("cmdline", ("b",)),)))
    assert [c.id for c in runner.run([_two_cells()], only_b, Events(), None).cells] == [
        "aarch64-nokpti-b"]
    nothing = runner.Options(out=tmp_path / "none", only=Selector((("arch", ("x86_64",)),)))
    with pytest.raises(UserError, match="no cell matches --only arch=x86_64"):
        runner.run([_two_cells()], nothing, Events(), None)
    assert not (tmp_path / "none").exists()


class Reversed:
    """Another executor: everything in this thread, last item first."""

    def __init__(self):
        self.items = []

    def map_unordered(self, fn, items):
        self.items = list(items)
        for item in reversed(self.items):
            yield fn(item)

    def drain(self, seconds):
        return []

    def describe(self):
        return {"kind": "reversed", "jobs": 1}


def test_another_executor_replaces_the_local_pool(lab, tmp_path):
    executor = Reversed()
    result = runner.run([_two_cells()], runner.Options(out=tmp_path), Events(), None,
                        executor=executor)
    assert [task.position for task in executor.items] == [0, 1, 2]
    assert [g.logdir.name[-1] for g in lab.guests] == ["c", "b", "a"]
    assert [c.cell.cmdline for c in result.cells] == ["a", "b", "c"]
    assert result.executor == {"kind": "reversed", "jobs": 1}


@pytest.mark.parametrize("signal", [KeyboardInterrupt(), Interrupted(15, "SIGTERM"),
                                    Interrupted(1, "SIGHUP")], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_kills_every_qemu_and_returns_what_ran_with_the_rest_interrupted(
        lab, tmp_path, signal):
    class Stopping:
        def map_unordered(self, fn, items):
            yield fn(next(iter(items)))
            raise signal

        def drain(self, seconds):
            return []

        def describe(self):
            return {"kind": "stopping", "jobs": 1}
    result = runner.run([_two_cells()], runner.Options(out=tmp_path), Events(), None,
                        executor=Stopping())
    name = getattr(signal, "name", "SIGINT")
    assert lab.killed == 1
    assert result.interrupted == name and result.status is Status.INTERRUPTED
    assert [(c.id, c.status) for c in result.cells] == [
        ("aarch64-nokpti-a", P), ("aarch64-nokpti-b", Status.INTERRUPTED),
        ("aarch64-nokpti-c", Status.INTERRUPTED)]
    assert result.cells[1].error == f"not run: interrupted by {name}"
    for c in result.cells:   # every cell has its result.json, the unfinished ones say why
        on_disk = json.loads((tmp_path / "s" / c.id / "result.json").read_text())
        assert on_disk["status"] == c.status.value


def test_a_cell_running_when_the_signal_comes_is_interrupted_not_an_error(lab, tmp_path):
    started = threading.Event()

    def slow(g):
        started.set()
        time.sleep(0.3)
        raise GuestTimeout("QEMU was killed")   # what the kill does to a running cell
    lab.commands = {"work": slow}

    class Stopping:
        def map_unordered(self, fn, items):
            self.came = []
            self.thread = threading.Thread(target=lambda: self.came.append(fn(next(items))))
            self.thread.start()
            started.wait(5)
            raise Interrupted(15, "SIGTERM")
            yield

        def drain(self, seconds):
            self.thread.join(seconds)
            return self.came

        def describe(self):
            return {"kind": "stopping", "jobs": 1}
    result = runner.run([_two_cells()], runner.Options(out=tmp_path), Events(), None,
                        executor=Stopping())
    first = result.cells[0]
    assert first.status is Status.INTERRUPTED and first.boots   # it ran, and says so
    assert first.interrupted == "SIGTERM"


# ---------------------------------------------------------------- LocalPool

def test_the_local_pool_returns_every_result_and_runs_at_most_jobs_at_once():
    lock, running, most = threading.Lock(), [0], [0]

    def work(i):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return i * i

    assert sorted(runner.LocalPool(3).map_unordered(work, range(20))) == [
        i * i for i in range(20)]
    assert most[0] <= 3
    assert list(runner.LocalPool(0).map_unordered(work, [4])) == [16]   # at least one job


def test_the_local_pool_cancels_what_has_not_started_when_a_task_raises():
    started, release = [], threading.Event()

    def work(i):
        started.append(i)
        if i == 1:
            raise ValueError("cell 1 broke")
        if i >= 2:
            release.wait(5)       # hold the only worker until the pool has been told
        return i

    with pytest.raises(ValueError, match="cell 1 broke"):
        list(runner.LocalPool(1).map_unordered(work, range(10)))
    release.set()
    time.sleep(0.1)                      # time for the worker to take more, were any left
    assert started[:2] == [0, 1]
    assert set(started) <= {0, 1, 2}     # 2 may have started; 3..9 were cancelled


# ---------------------------------------------------------------- the results directory

def test_a_second_run_on_the_same_out_is_refused_while_the_first_writes(tmp_path):
    out = tmp_path / "out"
    with runner.claim_out(out):
        (out / "results.json").write_text("{}")
        with pytest.raises(UserError, match=rf"--out {out}: another lab run \(pid \d+\)"):
            with runner.claim_out(out):
                pass
    with runner.claim_out(out):     # free again once the first is done
        pass
    assert (out / "results.json").exists()


def test_a_claim_that_wrote_nothing_leaves_no_directory(tmp_path):
    with pytest.raises(UserError):
        with runner.claim_out(tmp_path / "new"):
            raise UserError("a fragment option did not take effect")
    assert not (tmp_path / "new").exists()


def test_each_command_steps_whole_output_has_a_file_that_results_name(lab, tmp_path):
    lab.commands = {"big": ("x" * 5000 + "\n", 1), "small": ("ok\n", 0)}
    s = scenario(run("small"), run("big"),
                 FactAssert(name="kpti", line=2, fact="kpti_active", equals=True))
    result = run_cell(s, tmp_path)
    small, big, fact = result.steps
    assert (small.output, big.output, fact.output) == (
        "s/aarch64-nokpti-default/step-01.out", "s/aarch64-nokpti-default/step-02.out", None)
    assert (tmp_path / big.output).read_text() == "x" * 5000 + "\n"
    assert "all of it in s/aarch64-nokpti-default/step-02.out" in big.message
    saved = json.loads((tmp_path / "s" / "aarch64-nokpti-default" / "result.json").read_text())
    assert [st["output"] for st in saved["steps"]] == [small.output, big.output, None]


def test_a_step_that_ends_the_shell_says_its_state_was_reset(lab, tmp_path):
    lab.commands = {"exit": lambda g: replace(CommandResult("exit 7", "", 7, 0.1),
                                              shell_reset=True)}
    result = run_cell(scenario(run("exit 7", expect_exit=7)), tmp_path)
    (step,) = result.steps
    assert step.status is P and step.exit_code == 7
    assert "ended the lab's shell (exit status 7)" in step.message and "reset" in step.message


# ---------------------------------------------------------------- interleaved schedules

def test_without_repeats_the_schedule_is_the_cells_order():
    assert runner.schedule([1, 1, 1], None) == [(0, 0), (1, 0), (2, 0)]


@pytest.mark.parametrize("seed", range(20))
def test_repeats_run_in_shuffled_rounds_and_no_cell_boots_twice_in_a_row(seed):
    order = runner.schedule([3, 3, 3, 2], seed)
    assert sorted(order) == sorted((i, n) for i, k in enumerate([3, 3, 3, 2]) for n in range(k))
    rounds = [order[0:4], order[4:8], order[8:11]]
    assert [{n for _, n in r} for r in rounds] == [{0}, {1}, {2}]   # boot r of every cell
    assert all(a[0] != b[0] for a, b in zip(order, order[1:], strict=False))
    assert runner.schedule([3, 3, 3, 2], seed) == order            # seeded


def test_seeds_give_different_orders_so_no_pair_always_runs_side_by_side():
    orders = {tuple(runner.schedule([3, 3, 3], seed)) for seed in range(10)}
    assert len(orders) > 3


def test_a_run_interleaves_the_boots_of_its_cells_and_records_where_each_stood(lab, tmp_path):
    s = scenario(run("work"), cells=[cell("a"), cell("b"), cell("c")], repeat=3)
    result = runner.run([s], runner.Options(out=tmp_path, jobs=1, seed=11), Events(), None)
    booted = [(g.logdir.parent.name[-1], g.logdir.name) for g in lab.guests]
    order = runner.schedule([3, 3, 3], 11)
    assert booted == [("abc"[i], f"boot-{n}") for i, n in order]
    assert result.schedule == {"order": "interleaved", "seed": 11}
    for i, c in enumerate(result.cells):
        assert [b.index for b in c.boots] == [0, 1, 2] and c.status is P
        assert [b.position for b in c.boots] == [order.index((i, n)) for n in range(3)]
        assert all(b.host_load is not None and b.start_s >= 0 for b in c.boots)
    starts = sorted((b.start_s, b.position) for c in result.cells for b in c.boots)
    assert [p for _, p in starts] == list(range(9))
    assert runner.run([scenario(run("work"))], runner.Options(out=tmp_path / "one"), Events(),
                      None).schedule == {"order": "in order", "seed": None}


def test_an_interleaved_cell_skips_its_later_boots_after_one_errs(lab, tmp_path):
    lab.boot_error = lambda g: (GuestTimeout("no ready marker")
                                if g.logdir.parent.name.endswith("-a") else None)
    s = scenario(run("work"), cells=[cell("a"), cell("b")], repeat=3)
    result = runner.run([s], runner.Options(out=tmp_path, jobs=2, seed=1), Events(), None)
    a, b = result.cells
    assert len(a.boots) in (1, 2) and a.status is E     # a second may have started alongside
    assert len(b.boots) == 3 and b.status is P
    assert json.loads((tmp_path / "s" / a.id / "result.json").read_text())["status"] == "error"


# ---------------------------------------------------------------- cold boots or restores

def _metric_step():
    return run("bench", metrics=(metric("ns"),))


def test_a_cell_that_records_metrics_boots_cold_alone_or_not_and_says_why(lab, tmp_path):
    """Its numbers may be compared in this run or against another run later: a lone
    cell too (lab compare RUN_A RUN_B counts one template's clones as one boot)."""
    s = scenario(_metric_step(), cells=[cell("a"), cell("b"), cell("x", arch="x86_64")],
                 repeat=2)
    results = runner.run([s], runner.Options(out=tmp_path, jobs=1, seed=1), Events(),
                         progress_for=None)
    assert {g.options["restore"] for g in lab.guests} == {False} and len(lab.guests) == 6
    assert {c.boot_policy for c in results.cells} == {
        "cold: it records metrics, which may be compared (in this run or against another), "
        "and clones of one snapshot are not independent boots"}


def test_a_cell_without_metrics_restores_and_cold_forces_a_boot(lab, tmp_path):
    s = scenario(run("true"), cells=[cell("a"), cell("b")], repeat=2)
    runner.run([s], runner.Options(out=tmp_path / "1", jobs=1), Events(), progress_for=None)
    assert [g.options["restore"] for g in lab.guests] == [True] * 4
    lab.guests.clear()
    cold = runner.run([s], runner.Options(out=tmp_path / "2", jobs=1, cold=True), Events(),
                      progress_for=None)
    assert [g.options["restore"] for g in lab.guests] == [False] * 4
    assert {c.boot_policy for c in cold.cells} == {"cold: --cold"}
    assert json.loads((tmp_path / "2" / "s" / "aarch64-nokpti-a" / "result.json").read_text(
    ))["boot_policy"] == "cold: --cold"


def test_lab_run_seed_runs_a_runs_schedule_again(lab, tmp_path, monkeypatch):
    """results.json records the schedule's seed; `lab run --seed N` boots in that order."""
    from lab.app import cli
    scenario_file = tmp_path / "s.yaml"
    scenario_file.write_text("name: s\nrepeat: 3\nmatrix:\n  arch: [aarch64]\n"
                             "  kernel: [nokpti]\n  cmdline: {a: '', b: x, c: y}\n"
                             "steps:\n  - run: work\n")
    lab.commands = {"work": lambda g: ("ok", 0)}
    orders, seeds = [], []
    for i, extra in enumerate(([], ["--seed", "SEED"], ["--seed", "SEED"])):
        out = tmp_path / f"out{i}"
        extra = [str(seeds[0]) if a == "SEED" else a for a in extra]
        first = len(lab.guests)
        with pytest.raises(SystemExit) as exited:
            cli.main(["run", str(scenario_file), "--out", str(out), "-j", "1", *extra])
        assert exited.value.code == 0
        orders.append([g.logdir.parent.name for g in lab.guests[first:]])
        seeds.append(json.loads((out / "results.json").read_text())["schedule"]["seed"])
    assert seeds[0] == seeds[1] == seeds[2] and len(orders[0]) == 9
    assert orders[0] == orders[1] == orders[2]


@pytest.mark.parametrize("seed", ["-1", "x", str(2**31), "nan"])
def test_a_bad_seed_is_one_line_and_exit_2(seed, tmp_path):
    from tests.unit.inprocess import lab as lab_cli
    done = lab_cli("run", "scenarios/kpti.yaml", "--seed", seed, "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "--seed" in done.stderr and "Traceback" not in done.stderr
