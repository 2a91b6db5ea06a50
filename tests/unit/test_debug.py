"""lab debug's pure parts (issue 27): ELF function names, where a report says a fault
happened, gdb's command lines, and the CLI's bad input (one line, exit 2, before
anything is built). Booting under gdb is tests/integration/test_debug.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.app import debugging
from lab.artifacts import elf
from lab.core.errors import UserError
from lab.core.model import KernelBuild
from lab.core.results import Status
from lab.parse import faults
from tests.conftest import ROOT
from tests.unit.inprocess import lab

REPORTS = ROOT / "tests" / "data" / "debug-reports"


@pytest.fixture(scope="module")
def obj(tmp_path_factory) -> Path:
    """A relocatable object with two functions, a data symbol and an undefined call."""
    d = tmp_path_factory.mktemp("elf")
    (d / "t.c").write_text("int lab_data = 1;\nint puts(const char *s);\n"
                           "static int lab_helper(int x) { return x + lab_data; }\n"
                           "int lab_entry(void) { puts(\"x\"); return lab_helper(2); }\n")
    subprocess.run([shutil.which("gcc") or "gcc", "-O0", "-c", "-o", str(d / "t.o"),
                    str(d / "t.c")], check=True)
    return d / "t.o"


def test_functions_are_the_defined_functions_only(obj):
    names = elf.functions(obj)
    assert {"lab_entry", "lab_helper"} <= names
    assert "lab_data" not in names and "puts" not in names


@pytest.mark.parametrize("content, said", [
    (b"#!/bin/sh\necho hi\n", "not a 64-bit little-endian ELF"),
    (b"", "not a 64-bit little-endian ELF"),
    (b"\x7fELF\x01\x01" + b"\0" * 80, "not a 64-bit little-endian ELF"),
])
def test_what_is_not_an_elf_file_is_named(tmp_path, content, said):
    path = tmp_path / "f"
    path.write_bytes(content)
    with pytest.raises(UserError, match=said):
        elf.functions(path)


def test_a_truncated_elf_file_is_damaged_not_a_crash(obj, tmp_path):
    cut = tmp_path / "cut.o"
    cut.write_bytes(obj.read_bytes()[:200])
    with pytest.raises(UserError, match="damaged ELF|not a 64-bit"):
        elf.functions(cut)


# ---------------------------------------------------------------- where a fault happened

OOPS_ARM64 = """\
[   14.100000] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000
[   14.100300] Internal error: Oops: 0000000096000044 [#1] SMP
[   14.100400] Modules linked in: oops_write(O)
[   14.100600] pc : oops_write_write+0x8/0x20 [oops_write]
[   14.100650] lr : vfs_write+0xc4/0x2a0
[   14.100700] Call trace:
[   14.100800]  oops_write_write+0x8/0x20 [oops_write]
[   14.100850]  vfs_write+0xc4/0x2a0
[   14.100900] ---[ end trace 0000000000000000 ]---"""

OOPS_X86 = """\
[    9.300000] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    9.300100] Oops: 0000 [#1] PREEMPT
[    9.300200] RIP: 0010:oops_write_write+0x4/0x10 [oops_write]
[    9.300300] Call Trace:
[    9.300400]  <TASK>
[    9.300500]  vfs_write+0xb3/0x2d0
[    9.300600]  ? preempt_count_add+0x4a/0xa0
[    9.300700]  </TASK>"""

USER_RIP = """\
[    9.3] general protection fault, probably for non-canonical address
[    9.3] RIP: 0033:0x47fbe9
[    9.3] Call Trace:
[    9.3]  <TASK>
[    9.3]  do_syscall_64+0x3b/0x90
[    9.3]  </TASK>"""


@pytest.mark.parametrize("text, modules, site", [
    (OOPS_ARM64, frozenset({"oops_write"}), ("oops_write_write", "oops_write")),
    (OOPS_X86, frozenset({"oops_write"}), ("oops_write_write", "oops_write")),
    # A frame of a module that is not under test is passed over for the kernel's.
    (OOPS_ARM64, frozenset({"other"}), ("vfs_write", None)),
    # A user-space RIP (code segment 0033) is no kernel site: the trace's is.
    (USER_RIP, None, ("do_syscall_64", None)),
    ((REPORTS / "kasan-uaf-aarch64.log").read_text(), frozenset({"uaf"}), ("uaf_exit", "uaf")),
    # Below lockdep's own frames.
    ((REPORTS / "lockdep-circular-x86_64.log").read_text(), None, ("__mutex_lock", None)),
])
def test_the_site_is_the_first_frame_in_the_kernel_or_a_module_under_test(text, modules,
                                                                          site):
    assert faults.fault_site(text, modules) == faults.Site(*site)


def test_a_report_without_a_named_frame_has_no_site():
    assert faults.fault_site("[ 1.0] Kernel panic - not syncing: VFS\n[ 1.0]  0xffff0000\n") \
        is None


# ---------------------------------------------------------------- gdb's command lines

def _target(tmp_path: Path, where: str = "cache") -> debugging.Target:
    root = tmp_path / where
    kbuild = KernelBuild("aarch64", "nokpti+dbg", "h" * 64, root / "Image", root / "config",
                         root / "obj", "6.1.192")
    return debugging.Target(kbuild, root / "vmlinux", root / "obj", tmp_path / "src",
                            (root / "ext",))


def test_the_setup_loads_scripts_symbols_and_breaks_then_signals_ready(tmp_path):
    t = _target(tmp_path)
    text = debugging.setup_script(t, Path("/tmp/lab-run-x/gdb.sock"), ("f", "g.isra.0"),
                                  tmp_path / "ready", batch=True)
    lines = text.splitlines()
    order = [lines.index(x) for x in (
        f"file {t.vmlinux}", f"source {t.obj}/vmlinux-gdb.py",
        "target remote /tmp/lab-run-x/gdb.sock", f"lx-symbols {tmp_path}/cache/ext",
        "_lab_break('f')", "_lab_break('g.isra.0')", "continue")]
    assert order == sorted(order)
    assert repr(str(tmp_path / "ready")) in text
    # Interactive: gdb stops at the prompt, the lab does not continue for the person.
    assert "continue" not in debugging.setup_script(t, Path("/s"), (), tmp_path / "r",
                                                    batch=False).splitlines()


@pytest.mark.parametrize("where", ["with space", "new\nline", "tab\there"])
def test_a_path_gdb_would_split_is_refused(tmp_path, where):
    with pytest.raises(UserError, match="gdb reads paths"):
        debugging.setup_script(_target(tmp_path, where), Path("/s"), (), tmp_path / "r",
                               batch=True)


def test_a_break_on_a_function_nobody_defines_is_one_line(tmp_path, obj):
    t = debugging.Target(_target(tmp_path).kbuild, obj, tmp_path, tmp_path, ())
    debugging.check_breaks(("lab_entry",), t)
    with pytest.raises(UserError) as err:
        debugging.check_breaks(("no_such_function",), t)
    assert "no function no_such_function" in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- bad input

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _driver(tmp_path: Path, kbuild: str | None) -> Path:
    d = tmp_path / "mod"
    d.mkdir()
    if kbuild is not None:
        (d / "Kbuild").write_text(kbuild)
    return d


@pytest.mark.parametrize("make_args, said", [
    (lambda p: ["--break", "f;shell id"], "not a function name"),
    (lambda p: ["--break", "f", "--batch", str(p / "bin")], "not UTF-8 text"),
    (lambda p: ["--batch", str(p / "nosuch")], "--batch"),
    (lambda p: ["--module", str(_driver(p, None))], "no Kbuild"),
    (lambda p: ["--module", str(_driver(p, "# nothing\n"))], "builds no module"),
    (lambda p: ["--module", str(p / "nosuchdir")], "not a directory"),
    (lambda p: ["--kernel", "nosuchvariant"], "nosuchvariant"),
])
def test_bad_input_is_one_line_exit_2_before_any_build(tmp_path, cache, make_args, said):
    (tmp_path / "bin").write_bytes(b"\x7fELF\x00\x01\x02\xff" * 64)
    args = make_args(tmp_path)
    base = [] if "--kernel" in args else ["--kernel", "nokpti"]
    r = lab("debug", "--arch", "aarch64", *base, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not (cache / "kernels").exists()


@pytest.fixture
def run_dir(tmp_path):
    """A run with a cell that passed and one that failed without a kernel fault."""
    from lab.core.model import KernelMessage
    from lab.host.cache import write_json
    from tests.unit import factories as f
    ok = f.cell("aarch64", "nokpti", "default", f.boot(0, f.step("a")))
    bad_boot = f.boot(0, f.step("a", Status.FAIL, message="exit 1"))
    bad = f.cell("x86_64", "nokpti", "default", bad_boot)
    hung = f.boot(0, f.step("a", Status.ERROR, message="no answer"))
    hung.faults = [KernelMessage("oops", False, "[ 1.0] Oops\n[ 1.0]  0xffffffff81000000\n")]
    odd = f.cell("x86_64", "kpti", "default", hung)
    escaping = f.boot(0, f.step("a", Status.ERROR, message="panic"))
    escaping.logs = {"vmcore": "../../../etc/passwd"}
    hostile = f.cell("x86_64", "nokpti+dbg", "panic", escaping)
    # A kernel the cache does not hold (gdb would run its entry's scripts).
    sneaky = f.boot(0, f.step("a", Status.ERROR, message="panic"))
    sneaky.logs = {"vmcore": "vmcore"}
    outside = f.cell("x86_64", "gone", "panic", sneaky)
    outside.kernel = {"hash": "a" * 64}
    # A run whose record names a module directory and a kernel tree to build: never
    # built unless the command line names them too (a Kbuild is a program).
    evil_boot = f.boot(0, f.step("a", Status.FAIL, message="oops"))
    evil_boot.faults = [KernelMessage("oops", False, OOPS_ARM64)]
    evil = f.cell("aarch64", "nokpti", "evil", evil_boot, scenario="evil")
    tree = f.cell("aarch64", "kpti", "tree", evil_boot, scenario="s")
    tree.kernel_source = {"path": str(tmp_path / "linux"), "describe": "v6.1"}
    out = tmp_path / "run"
    out.mkdir()
    results = f.run(ok, bad, odd, hostile, evil, tree, outside)
    (out / "vmcore").write_bytes(b"\0" * 64)
    for entry in results.scenarios:
        if entry["name"] == "evil":
            entry["drivers"] = [str(tmp_path / "evil-module")]
    write_json(out / "results.json", results.to_json())
    return out


@pytest.mark.parametrize("spec, said", [
    ("justaword", "not RUN/CELL"),
    ("{run}/aarch64-nokpti-default", "did not fail"),
    ("{run}/riscv-x-default", "no cell 'riscv-x-default' (its cells: aarch64-nokpti-default"),
    ("{run}/x86_64-nokpti-default", "without a kernel fault that names a function"),
    ("{run}/x86_64-kpti-default", "without a kernel fault that names a function"),
    ("{tmp}/nosuchrun/cell", "no such run directory"),
    ("{tmp}/cell", "results.json: cannot read"),
    ("{run}/aarch64-nokpti-evil", "name it with --module"),
    ("{run}/aarch64-kpti-tree", "pass --kernel-src"),
])
def test_a_run_cell_that_cannot_be_debugged_is_one_line(tmp_path, cache, run_dir, spec, said):
    r = lab("debug", spec.format(run=run_dir, tmp=tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (cache / "kernels").exists()


@pytest.mark.parametrize("args, said", [
    (("--kernel", "kpti", "{run}/x86_64-nokpti-default"), "--arch and --kernel go together"),
    (("--break", "f", "{run}/x86_64-nokpti-default"), "drop --break"),
    (("{run}/x86_64-nokpti-default", "more"), "not 2 words"),
    (("--core", "--arch", "x86_64", "{run}/x86_64-nokpti-default"), "drop --arch"),
    (("--core",), "one RUN/CELL after --core"),
    (("--core", "{run}/aarch64-nokpti-default"), "no vmcore"),
    # A results.json that names a file outside its run is not followed.
    (("--core", "{run}/x86_64-nokpti+dbg-panic"), "is not a file in"),
    (("--core", "{run}/x86_64-gone-panic"), "no longer in the cache"),
    ((), "give --arch and --kernel"),
])
def test_what_lab_debug_is_asked_must_make_one_sense(tmp_path, cache, run_dir, args, said):
    r = lab("debug", *(a.format(run=run_dir) for a in args))
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
