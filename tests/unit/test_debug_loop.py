"""`lab driver --debug` without a guest: the scenario it runs, where a module's
place is recorded, and how the kmemleak step reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.app import driverloop
from lab.core.errors import UserError
from lab.core.model import KernelBuild
from lab.scenario import scenario
from lab.scenario.steps import kmemleak
from lab.scenario.steps.kmemleak import Kmemleak
from lab.scenario.steps.module import Module
from tests.unit.fakes import FakeGuest, context

HELLO = Path(__file__).resolve().parent.parent / "data" / "drivers" / "hello"


def test_debug_runs_the_smoke_test_on_the_debug_kernel_and_ends_with_a_kmemleak_scan():
    plain = driverloop.driver_scenario(HELLO, "aarch64", None)
    debug = driverloop.driver_scenario(HELLO, "aarch64", None, debug=True)
    assert [c.kernel for c in debug.cells] == ["debug"]
    assert debug.steps[:-1] == plain.steps
    assert isinstance(debug.steps[-1], Kmemleak) and debug.steps[-1].modules == ("lab_hello",)
    assert (plain.boot_timeout, debug.boot_timeout) == (60.0, driverloop.DEBUG_BOOT_S)


def test_debug_with_another_kernel_is_refused():
    with pytest.raises(UserError, match="--debug runs on the debug kernel"):
        driverloop.driver_scenario(HELLO, "x86_64", "kpti", debug=True)


@pytest.mark.parametrize("load, name", [("amba-pl011", "amba_pl011"), ("pl011_lab", "pl011_lab"),
                                        ("/lib/modules/x/extra/foo-bar.ko", "foo_bar")])
def test_the_module_name_is_what_proc_modules_says(load, name):
    assert kmemleak.module_name(load) == name


def test_a_name_no_module_can_have_records_nothing():
    assert kmemleak.record_command("a;reboot") is None
    assert kmemleak.record_command("x y") is None
    cmd = kmemleak.record_command("leak")
    assert cmd is not None and "'^leak ' /proc/modules" in cmd and cmd.endswith("; true")
    assert "grep -r . /sys/module/leak/sections/" in cmd


REPORTS = Path(__file__).resolve().parent.parent / "data" / "debug-reports"
LEAK = REPORTS / "kmemleak-leak-aarch64"


def record_of(*loads: tuple[str, str]) -> str:
    """A module's record as the guest keeps it: a block per load."""
    return "".join(f"{kmemleak.LOAD}\n{proc}{sections}" for proc, sections in loads)


def test_ranges_are_every_place_the_module_occupied_load_after_load():
    proc, sections = ((LEAK / n).read_text() for n in ("proc-modules.txt", "sections.txt"))
    moved = proc.replace("0xffffffc0007f0000", "0xffffffc000900000")
    found = kmemleak.ranges(record_of((proc, sections), (moved, "")), "leak")
    core = [(r.start, r.end) for r in found if r.name == "core"]
    assert core == [(0xffffffc0007f0000, 0xffffffc0007f4000),
                    (0xffffffc000900000, 0xffffffc000904000)]
    assert any(r.name == ".init.text" and 0xffffffc0007f503c in r for r in found)


def kernel_with(tmp_path: Path, config: str) -> KernelBuild:
    (tmp_path / "config").write_text(config)
    return KernelBuild(arch="aarch64", kernel="k", hash="0" * 12, image=tmp_path / "Image",
                       config=tmp_path / "config", build_dir=tmp_path, release="6.1")


@pytest.mark.parametrize("config, records", [("CONFIG_DEBUG_KMEMLEAK=y\n", True),
                                             ("# CONFIG_DEBUG_KMEMLEAK is not set\n", False)])
def test_a_load_on_a_kmemleak_kernel_records_where_the_module_lies(tmp_path, config, records):
    guest = FakeGuest()
    ctx = context(guest)
    ctx.kernel = kernel_with(tmp_path, config)
    assert Module(name="load", line=1, load="leak").execute(ctx) == []
    assert [c for c, _ in guest.ran][1:] == ([kmemleak.record_command("leak")] if records else [])


def test_a_failed_load_records_nothing(tmp_path):
    guest = FakeGuest({"modprobe": ("modprobe: not found", 1)})
    ctx = context(guest)
    ctx.kernel = kernel_with(tmp_path, "CONFIG_DEBUG_KMEMLEAK=y\n")
    assert Module(name="load", line=1, load="leak").execute(ctx)
    assert len(guest.ran) == 1


def test_the_scan_on_a_kernel_without_kmemleak_fails_rather_than_pass(tmp_path):
    guest = FakeGuest()
    ctx = context(guest)
    ctx.kernel = kernel_with(tmp_path, "# CONFIG_DEBUG_KMEMLEAK is not set\n")
    problems = Kmemleak(name="scan", line=1, modules=("leak",)).execute(ctx)
    assert problems and "no CONFIG_DEBUG_KMEMLEAK" in problems[0] and guest.ran == []


def test_a_kmemleak_step_in_yaml_names_modules(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmatrix: {arch: aarch64, kernel: debug}\nsteps:\n"
                    "  - module: {load: lab-hello}\n  - kmemleak: [lab-hello, other]\n")
    step = scenario.load(path).steps[-1]
    assert isinstance(step, Kmemleak) and step.modules == ("lab_hello", "other")


def test_a_kmemleak_step_refuses_what_is_no_module_name(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmatrix: {arch: aarch64, kernel: debug}\nsteps:\n"
                    "  - kmemleak: ['x; reboot']\n")
    with pytest.raises(UserError, match=r"s.yaml:4: steps\[0\].kmemleak: 'x; reboot' is not"):
        scenario.load(path)


def scan(tmp_path: Path, modules: tuple[str, ...], record: str):
    guest = FakeGuest({r"echo scan": ((LEAK / "kmemleak.txt").read_text(), 0),
                       r"cat /run/lab-modules/leak\b": (record, 0)})
    ctx = context(guest)
    ctx.kernel = kernel_with(tmp_path, "CONFIG_DEBUG_KMEMLEAK=y\n")
    return Kmemleak(name="scan", line=1, modules=modules).execute(ctx), ctx, guest


def test_a_leak_of_the_unloaded_module_fails_the_scan_naming_it(tmp_path):
    """The real report: the leak's only frame of the module is a bare address in its
    freed init code, which the record of its load places."""
    record = record_of(*[((LEAK / n).read_text() for n in ("proc-modules.txt", "sections.txt"))])
    problems, ctx, guest = scan(tmp_path, ("leak",), record)
    assert problems == ["kernel kmemleak: 1 unreferenced object(s) allocated by leak: "
                        "unreferenced object 0xffffff800367a200 (size 256):"]
    assert guest.ran[0][0].count("echo scan") == 2          # one scan reports nothing
    assert guest.ran[0][0].startswith(f"sleep {kmemleak.MIN_AGE_S} ")


def test_a_leak_nobody_can_pin_on_the_module_is_a_note_not_a_failure(tmp_path):
    problems, ctx, _ = scan(tmp_path, ("leak",), "")           # no record: nothing to go by
    assert problems == [] and ctx.notes == ["1 other suspected leak(s), not leak's "
                                            "(in the step's output)"]
