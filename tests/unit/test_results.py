"""lab.core.results: status derived from the children, pooled metrics, and a lossless
results.json (format 3, with formats 1 and 2 still read)."""

import json

import pytest

from lab.core import results
from lab.core.model import BootFacts, Cell, KernelMessage
from lab.core.results import BootResult, CellResult, RunResult, Status, StepResult
from tests.unit.factories import boot, cell, run, step

P, F, E, S = Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP


@pytest.mark.parametrize("statuses, worst", [
    ([], P), ([P], P), ([S], P), ([P, S], P),
    ([P, F, S], F), ([S, F], F),
    ([F, E], E), ([E, P], E), ([P, S, F, E], E),
])
def test_worst_is_error_over_fail_over_pass_and_skip_changes_nothing(statuses, worst):
    assert Status.worst(statuses) is worst
    assert Status.worst(iter(statuses)) is worst      # any iterable, read once


def test_status_reads_and_prints_as_its_json_value():
    assert Status("fail") is F and str(F) == "fail" and f"{E}" == "error"


# ---------------------------------------------------------------- boots

def test_a_boot_is_the_worst_of_its_steps():
    assert boot(0, step("a"), step("b", S)).status is P
    assert boot(0, step("a"), step("b", F), step("c", S)).status is F
    assert boot(0).status is P


def test_a_boot_with_an_error_is_an_error_even_if_its_steps_passed():
    b = boot(0, step("a"), step("b"), error="QEMU exited")
    assert b.status is E
    assert b.failed_to_boot                  # no step owns the error: shutdown failed


def test_failed_to_boot_only_when_no_step_owns_the_error():
    panicked = boot(0, step("a"), step("b", E, message="panic"), step("c", S),
                    error="Kernel panic")
    assert panicked.status is E and not panicked.failed_to_boot
    assert boot(0, error="no ready marker within 60 s").failed_to_boot
    assert not boot(0, step("a", F)).failed_to_boot


# ---------------------------------------------------------------- cells

def test_a_cell_is_the_worst_of_its_boots():
    assert cell("aarch64", "k", "c", boot(0, step("a")), boot(1, step("a"))).status is P
    assert cell("aarch64", "k", "c", boot(0, step("a", F)), boot(1, step("a"))).status is F
    assert cell("aarch64", "k", "c", boot(0, step("a", F)),
                boot(1, step("a", E), error="panic")).status is E


def test_a_cell_without_boots_or_with_its_own_error_is_an_error():
    empty = cell()
    assert empty.status is E and not empty.failed_to_boot and empty.error_message == ""
    broken = cell("aarch64", "k", "c", boot(0, step("a")), error="kernel build failed")
    assert broken.status is E and broken.failed_to_boot
    assert broken.error_message == "kernel build failed"


def test_a_cell_failed_to_boot_when_any_boot_did_and_says_why():
    c = cell("aarch64", "k", "c", boot(0, step("a")), boot(1, error="boot timeout"))
    assert c.failed_to_boot and c.error_message == "boot timeout"
    owned = cell("aarch64", "k", "c", boot(0, step("a", E), error="panic"))
    assert not owned.failed_to_boot and owned.error_message == "panic"


def test_metrics_pool_every_boot_in_boot_order_without_touching_the_boots():
    c = cell("aarch64", "k", "c", boot(0, samples={"a": [1, 2]}),
             boot(1, samples={"a": [3], "b": [9]}), boot(2, samples={"a": [4, 5]}))
    assert c.metrics == {"a": [1, 2, 3, 4, 5], "b": [9]}
    assert c.metrics == {"a": [1, 2, 3, 4, 5], "b": [9]}     # asking twice changes nothing
    assert [b.samples for b in c.boots] == [{"a": [1, 2]}, {"a": [3], "b": [9]}, {"a": [4, 5]}]


def test_steps_faults_and_boot_times_come_from_every_boot_in_order():
    b0, b1 = boot(0, step("a"), boot_s=0.6), boot(1, step("a", F, boot=1), boot_s=0.8)
    b0.faults = [KernelMessage("warning", False, "WARNING: at x")]
    b1.faults = [KernelMessage("oops", True, "Oops: 0000")]
    c = cell("aarch64", "k", "c", b0, b1)
    assert [(s.boot, s.status) for s in c.steps] == [(0, P), (1, F)]
    assert [f.kind for f in c.faults] == ["warning", "oops"]
    assert c.boot_times == [0.6, 0.8]


def test_facts_come_from_the_first_boot_that_has_them():
    first = BootResult(0, error="boot timeout")            # never came up: no facts
    second = boot(1, accel="kvm")
    second.facts = BootFacts("6.1.99", "kvm", "", 0.4, True)
    c = cell("x86_64", "k", "c", first, second)
    assert (c.accel, c.kernel_release, c.kpti_active) == ("kvm", "6.1.99", True)
    assert cell().accel == "" and cell().kpti_active is None


def test_tainted_is_the_last_boot_that_read_it():
    b0, b1, b2 = boot(0), boot(1), boot(2, error="panic")
    b0.tainted, b1.tainted = 0, 4096
    assert cell("aarch64", "k", "c", b0, b1, b2).tainted == 4096


def test_logs_get_the_boot_number_only_with_several_boots():
    one = boot(0)
    one.logs = {"console": "s/c/console.log", "qemu": "s/c/qemu.log"}
    assert cell("aarch64", "k", "c", one).logs == one.logs
    b0, b1 = boot(0), boot(1)
    b0.logs, b1.logs = {"console": "boot-0/console.log"}, {"console": "boot-1/console.log"}
    assert cell("aarch64", "k", "c", b0, b1).logs == {"console-0": "boot-0/console.log",
                                                      "console-1": "boot-1/console.log"}


# ---------------------------------------------------------------- JSON

def _rich_cell() -> CellResult:
    """Everything to_json writes, with values that survive its rounding."""
    b0 = BootResult(0, BootFacts("6.1.0", "tcg", "console=hvc0 kpti=1", 0.652, True),
                    [StepResult("load", "module", 0, P, 0.125, 0, ""),
                     StepResult("measure", "run", 0, F, 1.5, 1, "exit code 1, expected 0"),
                     StepResult("check", "assert", 0, P, 0.0, None, "")],
                    {"getppid_ns": [1100.0, 1150.5], "reg": [3841.0]},
                    [KernelMessage("warning", False, "WARNING: CPU: 0 PID: 1\n trace")], 512,
                    {"console": "s/c/boot-0/console.log", "qemu": "s/c/boot-0/qemu.log"}, "")
    b1 = BootResult(1, BootFacts("6.1.0", "tcg", "console=hvc0 kpti=1", 0.71, True),
                    [StepResult("load", "module", 1, P, 0.1, 0, ""),
                     StepResult("measure", "run", 1, E, 3.25, None, "Kernel panic - x"),
                     StepResult("check", "assert", 1, S, 0.0, None, "")],
                    {"getppid_ns": [1200.0]},
                    [KernelMessage("panic", True, "Kernel panic - not syncing: x")], None,
                    {"console": "s/c/boot-1/console.log"}, "Kernel panic - not syncing: x")
    return CellResult(Cell("aarch64", "kpti", "forced-on", ("kpti=1",)), "kpti", "icount",
                      {"CONFIG_UNMAP_KERNEL_AT_EL0": "y"}, [b0, b1],
                      {"getppid_ns": "ns", "reg": ""}, 12.5, "")


def _through_json(data: dict) -> dict:
    return json.loads(json.dumps(data))


def test_a_cell_survives_to_json_and_back_unchanged():
    original = _rich_cell()
    data = _through_json(original.to_json())
    again = CellResult.from_json(data)
    assert again == original
    assert again.cell.cmdline_words == ("kpti=1",)       # Cell equality would not say
    assert [b.steps for b in again.boots] == [b.steps for b in original.boots]
    assert again.to_json() == data
    assert (again.status, again.failed_to_boot, again.logs, again.tainted) == (
        E, False, original.logs, 512)


def test_a_cell_that_never_ran_keeps_its_own_error():
    original = cell("x86_64", "nokpti", "default", error="kernel build failed: make")
    again = CellResult.from_json(_through_json(original.to_json()))
    assert again == original and again.boots == []
    assert again.status is E and again.error_message == "kernel build failed: make"


def test_a_run_survives_to_json_and_back():
    original = run(_rich_cell(), cell("x86_64", "nokpti", "default",
                                      boot(0, step("measure")), scenario="other"))
    original.duration_s, original.lab_version = 42.5, "0.1.0"
    data = _through_json(original.to_json())
    assert data["format"] == results.FORMAT
    assert data["scenario"] == "kpti, other"
    again = RunResult.from_json(data)
    assert again == original
    assert again.status is E


def test_a_results_file_from_a_newer_lab_is_refused():
    data = run(cell(metrics={"a": [1]})).to_json()
    data["format"] = results.FORMAT + 1
    with pytest.raises(ValueError, match="newer"):
        RunResult.from_json(data)


# ---------------------------------------------------------------- format 1

def _format1_cell(**over) -> dict:
    """A cell as the runner wrote it before results were versioned (no "boots")."""
    d = {"id": "aarch64-kpti-forced-on", "scenario": "kpti", "arch": "aarch64",
         "kernel": "kpti", "cmdline": "forced-on", "cmdline_words": ["kpti=1"],
         "accel": "tcg", "timing": "wallclock", "status": "pass", "error": "",
         "kpti_active": True, "kernel_release": "6.1.0", "config": {"CONFIG_X": "y"},
         "boot_s": 0.65, "boots_s": [0.65],
         "metrics": {"getppid_ns": [1100.0, 1150.0]}, "units": {"getppid_ns": "ns"},
         "steps": [{"name": "measure", "kind": "run", "boot": 0, "status": "pass",
                    "duration_s": 1.0, "exit_code": 0, "message": ""}],
         "faults": [], "tainted": 0,
         "logs": {"console": "kpti/aarch64-kpti-forced-on/console.log"}, "duration_s": 3.0}
    d.update(over)
    return d


def test_a_format_1_cell_loads_with_its_samples_status_and_facts():
    c = CellResult.from_json(_format1_cell())
    assert c.status is P and c.metrics == {"getppid_ns": [1100.0, 1150.0]}
    assert (c.accel, c.kpti_active, c.kernel_release, c.boot_times) == ("tcg", True, "6.1.0",
                                                                         [0.65])
    assert c.logs == {"console": "kpti/aarch64-kpti-forced-on/console.log"}
    assert c.units == {"getppid_ns": "ns"} and c.config == {"CONFIG_X": "y"}


def test_a_format_1_cell_that_never_booted_is_an_error_that_failed_to_boot():
    c = CellResult.from_json(_format1_cell(status="error", error="no ready marker",
                                           boot_s=None, boots_s=[], metrics={}, steps=[]))
    assert c.status is E and c.failed_to_boot and c.error_message == "no ready marker"


def _step1(name: str, status: str, boot: int, message: str = "") -> dict:
    return {"name": name, "kind": "run", "boot": boot, "status": status, "duration_s": 0.5,
            "exit_code": None, "message": message}


def test_a_format_1_cell_with_repeat_keeps_its_boots_logs_and_who_owns_the_error():
    """repeat: 2, the second boot panicked in a step. The panic belongs to that step:
    the cell did not fail to boot, and the per-boot log names stay as they were."""
    logs = {f"{n}-{i}": f"kpti/c/boot-{i}/{n}.log" for i in (0, 1) for n in ("console", "qemu")}
    c = CellResult.from_json(_format1_cell(
        status="error", error="Kernel panic - not syncing", boots_s=[0.6, 0.7], boot_s=0.65,
        metrics={"getppid_ns": [1.0, 2.0, 3.0]}, logs=logs,
        steps=[_step1("measure", "pass", 0), _step1("check", "pass", 0),
               _step1("measure", "error", 1, "Kernel panic"), _step1("check", "skip", 1)]))
    assert c.status is E
    assert not c.failed_to_boot
    assert c.metrics == {"getppid_ns": [1.0, 2.0, 3.0]}
    assert [(s.boot, s.status) for s in c.steps] == [(0, P), (0, P), (1, E), (1, S)]
    assert [b.status for b in c.boots] == [P, E]
    assert c.logs == logs
    assert c.boot_times == [0.6, 0.7]


def test_a_format_1_cell_whose_second_boot_never_came_up_failed_to_boot():
    logs = {f"console-{i}": f"kpti/c/boot-{i}/console.log" for i in (0, 1)}
    c = CellResult.from_json(_format1_cell(status="error", error="boot timeout",
                                           boots_s=[0.6], logs=logs))
    assert c.status is E and c.failed_to_boot and c.error_message == "boot timeout"
    assert c.logs == logs and c.boot_times == [0.6]
    assert c.metrics == {"getppid_ns": [1100.0, 1150.0]}


def test_a_format_1_run_loads_and_writes_back_as_the_current_format():
    old = {"scenario": "kpti, mmio", "lab_version": "0.1.0", "host": {"cores": 2}, "jobs": 2,
           "timing": "wallclock", "duration_s": 9.0,
           "cells": [_format1_cell(status="fail", steps=[_step1("measure", "fail", 0, "no")])]}
    r = RunResult.from_json(old)
    assert [s["name"] for s in r.scenarios] == ["kpti", "mmio"]
    assert r.status is F and r.cells[0].steps[0].message == "no"
    assert r.to_json()["format"] == results.FORMAT


# ---------------------------------------------------------------- format 3: boots in the schedule

def test_each_boot_keeps_its_place_in_the_schedule_its_start_and_the_host_load():
    b = boot(0, step("measure"), samples={"m": [1.0, 2.0]}, boot_s=0.7)
    b.position, b.start_s, b.host_load = 4, 12.34567, 1.25
    r = run(cell("aarch64", "kpti", "on", b, boot(1, samples={"m": [3.0]})))
    r.schedule = {"order": "interleaved", "seed": 7}
    data = _through_json(r.to_json())
    (first, second) = data["cells"][0]["boots"]
    assert (first["position"], first["start_s"], first["host_load"], first["boot_s"]) == (
        4, 12.346, 1.25, 0.7)
    assert first["samples"] == {"m": [1.0, 2.0]} and second["position"] is None
    assert data["schedule"] == {"order": "interleaved", "seed": 7}
    again = RunResult.from_json(data)
    assert again.cells[0].boots[0].position == 4 and again.schedule == r.schedule
    assert again.cells[0].boot_samples("m") == [[1.0, 2.0], [3.0]]


def test_a_format_2_run_loads_with_its_boots_and_no_schedule():
    data = _through_json(run(cell("aarch64", "kpti", "on", boot(0, samples={"m": [1.0]}),
                                  boot(1, samples={"m": [2.0]}))).to_json())
    data["format"] = 2
    del data["schedule"]
    for b in data["cells"][0]["boots"]:
        for key in ("position", "start_s", "host_load", "boot_s", "duration_s"):
            del b[key]
    again = RunResult.from_json(data)
    assert again.schedule == {} and [b.position for b in again.cells[0].boots] == [None, None]
    assert again.cells[0].boot_samples("m") == [[1.0], [2.0]]
