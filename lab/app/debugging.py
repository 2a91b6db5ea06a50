"""lab debug's use case: a guest with QEMU's gdbstub, and gdb-multiarch on the +dbg
kernel's vmlinux with the kernel's gdb scripts, module symbols and breakpoints.

The order of a session:
1. The guest boots to its shell with the gdbstub on a private unix socket (the
   run directory is 0700). The breakpoints are set only then: a shell calls
   getppid too, and a breakpoint set at boot would stop in it.
2. gdb loads vmlinux, the kernel's scripts (vmlinux-gdb.py) and the source
   path, attaches (which stops the guest), runs `lx-symbols` on the module
   directories (the symbols of a module loaded later come when it loads: a
   breakpoint of the scripts' own on do_init_module), sets the breakpoints,
   touches a ready file, and continues.
3. The lab sees the ready file and runs CMD in the guest over its shell. A
   breakpoint stops the guest; the console's reader keeps reading, so no byte
   of the command's output or the kernel log is lost while gdb holds it.
4. --batch FILE: gdb runs FILE's commands at the first stop, then deletes its
   breakpoints and detaches, so CMD runs to its end. When CMD ends with gdb
   still waiting in a `continue`, the lab interrupts gdb (SIGINT), which then
   does the same. If no breakpoint was reached, FILE never runs.
   At a terminal, a person has gdb until they quit it; CMD runs meanwhile.

Nothing a user hands in reaches gdb's command line unchecked: a function name is
an identifier that vmlinux or a module defines (artifacts.elf), a path holds no
space or control character. FILE is the user's own gdb script, run as gdb -x
would run it.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lab.analysis.compare import load_results
from lab.app.driverloop import kbuild_modules, retarget
from lab.arches import get_arch
from lab.artifacts import elf
from lab.artifacts.image import kernel_tree
from lab.artifacts.kernel import cached_kernel
from lab.core.deadline import Deadline
from lab.core.errors import GuestError, InfraError, LabError, UserError
from lab.core.model import Cell, KernelBuild, KernelMessage, Scenario, Step
from lab.core.results import CellResult, RunResult, Status
from lab.guest.console import COMMAND_DEADLINE_S
from lab.guest.guest import Guest
from lab.host import proc
from lab.host.cache import PARTIAL, CorruptEntry
from lab.parse import faults
from lab.scenario import scenario
from lab.scenario.steps.base import Context

T = TypeVar("T")
log = logging.getLogger("lab.app.debugging")

#: Debian's gdb for every guest arch (gdb-multiarch).
GDB = "gdb-multiarch"
#: A function gdb may be asked to break on: what C and the compiler's clones
#: (foo.constprop.0, foo.isra.0) name.
FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
#: gdb loading a vmlinux with DWARF (some 10 s under load), attaching, lx-symbols.
ATTACH_S = 180.0
#: After CMD ends: how long gdb may take to finish FILE and exit on its own, then
#: after a SIGINT, before it is killed.
FINISH_S = 5.0
#: gdb reading a vmcore and running a --batch file's commands.
CORE_DEADLINE_S = 300.0
#: The kernel command-line words a debugged guest boots with: no address-space
#: randomisation (gdb reads vmlinux's link addresses; the lab kernels have none
#: built in on either arch, this holds for a user's tree too).
CMDLINE = ("nokaslr",)


@dataclass(frozen=True)
class Target:
    """What gdb reads for one +dbg kernel: vmlinux, the build tree (its gdb scripts),
    the source tree, and the directories of the modules the guest may load."""

    kbuild: KernelBuild
    vmlinux: Path
    obj: Path
    source: Path
    module_dirs: tuple[Path, ...]


def _gdb_path(path: Path) -> str:
    """A path as a gdb command line takes it: its words end at a space."""
    text = str(path)
    if re.search(r"[\s\x00-\x1f\x7f]", text):
        raise UserError(f"{text!r}: gdb reads paths in its command lines, where a space or a "
                        "control character ends them; use a path without any")
    return text


def target(kbuild: KernelBuild) -> Target:
    """The Target of a built +dbg kernel (its modules: the kernel's own in the
    build tree, and those built for its images, drivers/ and --module's)."""
    vmlinux = kbuild.vmlinux
    if vmlinux is None:
        raise InfraError(f"kernel {kbuild.arch}/{kbuild.kernel} has no vmlinux with debug "
                         "information (lab debug boots the +dbg form of a variant)")
    source = kernel_tree(kbuild)
    ext = kbuild.image.parent / "ext"
    dirs = (ext,) if ext.is_dir() else ()
    return Target(kbuild, vmlinux, kbuild.build_dir, source, dirs)


def module_files(t: Target) -> list[Path]:
    return sorted(p for d in t.module_dirs for p in d.rglob("*.ko"))


def check_breaks(breaks: tuple[str, ...], t: Target) -> None:
    """Each --break names a function that vmlinux or one of the modules defines:
    gdb would otherwise keep a pending breakpoint for it and wait forever."""
    if not breaks:
        return
    kos = module_files(t)
    known = set(elf.functions(t.vmlinux)).union(*(elf.functions(ko) for ko in kos))
    for name in breaks:
        if not FUNCTION.fullmatch(name):
            raise UserError(f"--break {name!r}: not a function name")
        if name not in known:
            mods = ", ".join(p.name for p in kos) or "no module"
            raise UserError(f"--break {name}: no function {name} in {t.kbuild.arch}/"
                            f"{t.kbuild.kernel}'s vmlinux nor in {mods}")


def setup_script(t: Target, socket: Path, breaks: tuple[str, ...], ready: Path,
                 batch: bool) -> str:
    """gdb's commands up to the first stop (see the module docstring). Pure."""
    lines = [
        "set pagination off", "set confirm off", "set breakpoint pending on",
        "set auto-load python-scripts off",
        f"file {_gdb_path(t.vmlinux)}",
        f"directory {_gdb_path(t.source)}",
        # A module's DWARF names the scratch directory the cache built it in.
        *(f"set substitute-path {_gdb_path(d.parent / (PARTIAL + d.name))} {_gdb_path(d)}"
          for ext in t.module_dirs if ext.is_dir() for d in sorted(ext.iterdir()) if d.is_dir()
          and not d.name.startswith(".")),
        f"source {_gdb_path(t.obj / 'vmlinux-gdb.py')}",
        f"target remote {_gdb_path(socket)}",
        "lx-symbols " + " ".join(_gdb_path(d) for d in t.module_dirs),
        "python",
        *BREAK_HELPER,
        *(f"_lab_break({name!r})" for name in breaks),
        "_lab_stops = []",
        "gdb.events.stop.connect(lambda ev: isinstance(ev, gdb.BreakpointEvent) "
        "and _lab_stops.append(ev))",
        f"open({str(ready)!r}, 'w').close()",
        "end",
    ]
    if batch:
        lines += [
            "continue",
            "python",
            "if not _lab_stops:",
            "    gdb.write('lab debug: the command ended without reaching a breakpoint\\n')",
            "    gdb.execute('delete')",
            "    gdb.execute('detach')",
            "    gdb.execute('quit 3')",
            "end",
        ]
    return "\n".join(lines) + "\n"


#: gdb Python: a breakpoint on a function at the first instruction that its own
#: source file has (past the prologue and any header code inlined before it: the
#: first instruction of arm64's getppid is rcu_read_lock's, from rcupdate.h), so the
#: stop and the backtrace name the function's file and line. A function gdb does not
#: know yet (a module's, before it loads) is an ordinary pending breakpoint. An ELF
#: alias (x86_64's __x64_sys_getppid is __do_sys_getppid) is found by its address.
BREAK_HELPER = (
    "import gdb",
    "def _lab_break(name):",
    "    try:",
    "        addr = int(gdb.parse_and_eval(name).address)",
    "    except gdb.error:",
    "        return gdb.Breakpoint(name)",
    "    block = gdb.block_for_pc(addr)",
    "    while block is not None and block.function is None:",
    "        block = block.superblock",
    "    fn = block.function if block is not None else None",
    "    if fn is None or fn.symtab is None:",
    "        return gdb.Breakpoint(name)",
    "    own = [e.pc for e in fn.symtab.linetable()",
    "           if block.start <= e.pc < block.end and e.line > 0]",
    "    return gdb.Breakpoint('*%#x' % min(own)) if own else gdb.Breakpoint(name)",
)
#: After --batch FILE: the guest runs on, free of gdb.
TRAILER = "delete\ndetach\n"
#: gdb's exit status when no breakpoint was reached (setup_script's quit 3).
NOT_REACHED = 3


def gdb_argv(setup: Path, batch: Path | None, trailer: Path | None = None) -> list[str]:
    """gdb running setup, then (batch mode) batch's commands and trailer's."""
    after = [str(f) for f in (batch, trailer) if batch and f]
    return [GDB, "-q", "-nx", *(["-batch"] if batch else []), "-x", str(setup),
            *(w for f in after for w in ("-x", f))]


class Session:
    """gdb attached to a booted guest (made with gdb=True), CMD run beside it."""

    def __init__(self, guest: Guest, t: Target, breaks: tuple[str, ...],
                 batch: Path | None, show: Callable[[str], None]):
        self.guest, self.target, self.breaks, self.batch = guest, t, breaks, batch
        self.show = show                      # a line of gdb's output (batch mode)
        self.logdir = guest.logdir
        self.gdb: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self, terminal: bool = False) -> None:
        """gdb started and attached, its breakpoints set, the guest running again."""
        ready = self.logdir / "gdb.ready"
        ready.unlink(missing_ok=True)
        setup = self.logdir / "gdb-setup.gdb"
        setup.write_text(setup_script(self.target, self.guest.gdb_socket, self.breaks, ready,
                                      batch=self.batch is not None))
        trailer = self.logdir / "gdb-trailer.gdb"
        trailer.write_text(TRAILER)
        argv = proc.with_pdeathsig(gdb_argv(setup, self.batch, trailer))
        log = self.logdir / "gdb.log"
        if terminal:
            self.gdb = proc.popen(argv, stdout=None, stderr=None, stdin=None,
                                  cwd=self.logdir)
        else:
            self.gdb = proc.popen(argv, stdout=subprocess.PIPE, text=True, cwd=self.logdir)
            self._reader = threading.Thread(target=self._copy, args=(self.gdb, log),
                                            name="gdb-output", daemon=True)
            self._reader.start()
        deadline = Deadline(ATTACH_S)
        while not ready.exists():
            if self.gdb.poll() is not None:
                self._join()
                raise GuestError(f"gdb exited (code {self.gdb.returncode}) before it had "
                                 f"attached and set its breakpoints: see {log}")
            if deadline.expired():
                raise InfraError(f"gdb did not attach within {ATTACH_S:g} s: see {log}")
            time.sleep(0.05)

    def _copy(self, gdb: subprocess.Popen, log: Path) -> None:
        assert gdb.stdout is not None
        with open(log, "w", encoding="utf-8") as fh:
            for line in gdb.stdout:
                fh.write(line)
                fh.flush()
                self.show(line.rstrip("\n"))

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=10)

    def finish(self) -> int:
        """After CMD: gdb given FINISH_S to end on its own, then interrupted, then
        killed. Its exit status."""
        gdb = self.gdb
        assert gdb is not None
        try:
            gdb.wait(timeout=FINISH_S)
        except subprocess.TimeoutExpired:
            gdb.send_signal(signal.SIGINT)
            try:
                gdb.wait(timeout=FINISH_S)
            except subprocess.TimeoutExpired:
                proc.stop_group(gdb, 0.0)
        self._join()
        return gdb.returncode

    def attached(self, action: Callable[[], T] | None, terminal: bool) -> tuple[T | None, int]:
        """action (CMD, or a cell's failing step) run with gdb attached: in this
        thread with --batch; at a terminal beside gdb, which the person ends. Its
        value (None if it had none or did not end) and gdb's exit status."""
        try:
            self.start(terminal)
            if not terminal:
                value = action() if action else None
                return value, self.finish()
            return self._beside_gdb(action)
        finally:
            self.close()

    def _beside_gdb(self, action: Callable[[], T] | None) -> tuple[T | None, int]:
        """action in a thread while the person drives gdb; once they quit it (gdb
        detaches: the guest runs on), action has FINISH_S to end, else it is left to
        the guest's shutdown, and says nothing."""
        gdb = self.gdb
        assert gdb is not None
        values: list[T] = []

        def run() -> None:
            assert action is not None
            try:
                values.append(action())
            except LabError as exc:          # the guest shut down under it
                log.debug("the command beside gdb: %s", exc)

        worker = threading.Thread(target=run, name="debug-action", daemon=True)
        if action is not None:
            worker.start()
        status = proc.wait_at_terminal(gdb)
        if action is not None:
            worker.join(FINISH_S)
        return (values[0] if values else None), status

    def close(self) -> None:
        """No gdb outlives the session (its pdeathsig covers a killed lab)."""
        if self.gdb is not None and self.gdb.poll() is None:
            proc.stop_group(self.gdb, 0.0)
        self._join()


# ---------------------------------------------------------------- lab debug RUN/CELL

@dataclass(frozen=True)
class Failure:
    """A failed cell of a run, as lab debug reproduces it: its scenario's steps up to
    the one that failed, the modules under test, and the function its fault names."""

    scenario: Scenario
    model: Cell
    steps: tuple[Step, ...]          # the failing step last
    drivers: tuple[Path, ...]
    site: faults.Site
    fault: KernelMessage


def failure(spec: str, named: tuple[Path, ...], source: Path | None) -> Failure:
    """RUN/CELL: a --out directory and the id of one of its cells that failed with a
    kernel fault; every way it can be wrong is a UserError (one line).

    What the lab builds comes from the command line, never from a results file (a
    Kbuild, a Makefile and a kernel tree's are programs make runs): the module
    directories the run built must be named again (named: the --module DIRs), and
    a kernel tree it built from must be --kernel-src (source)."""
    run, cell, results = _cell(spec)
    if cell.status not in (Status.FAIL, Status.ERROR):
        raise UserError(f"{spec}: the cell did not fail (it is {cell.status.value}): "
                        "nothing to debug")
    entry = next((s for s in results.scenarios if s.get("name") == cell.scenario), {})
    recorded = [Path(d) for d in entry.get("drivers", []) if isinstance(d, str)]
    given = {d.resolve() for d in named}
    for d in recorded:
        if d not in given:
            raise UserError(f"{spec}: the run built the modules of {d}: name it with --module "
                            f"{d} to build them again (a results file never says what the "
                            "lab builds)")
    tree = str(cell.kernel_source.get("path", ""))
    if tree and not tree.endswith(".tar.xz") and (source is None or str(source.resolve()) != tree):
        raise UserError(f"{spec}: the run built its kernel from {tree}: pass --kernel-src "
                        f"{tree} to build it again")
    modules = frozenset(m for d in named for m in kbuild_modules(d))
    boot = next((b for b in reversed(cell.boots) if b.status in (Status.FAIL, Status.ERROR)),
                None)
    failed = None if boot is None else next(
        (i for i, s in enumerate(boot.steps) if s.status in (Status.FAIL, Status.ERROR)), None)
    found = [] if boot is None else [
        (f, site) for f in boot.faults
        if (site := faults.fault_site(f.text, modules or None)) is not None]
    if boot is None or failed is None or not found:
        raise UserError(f"{spec}: the cell failed without a kernel fault that names a "
                        "function (lab debug stops where a fault happened)")
    path = Path(str(entry.get("path", "")))
    if not path.is_file():
        raise UserError(f"{spec}: its scenario {str(path)!r} is gone: the cell cannot be "
                        "reproduced")
    s = scenario.load(path)
    model = next((c for c in s.cells if c.id == cell.id), None)
    if model is None:               # lab driver ran it on an arch and kernel of its own
        s = retarget(s, cell.cell.arch, cell.cell.kernel)
        model = next((c for c in s.cells if c.id == cell.id), None)
    if model is None:
        raise UserError(f"{spec}: {path} no longer has the cell {cell.id!r}")
    steps = tuple(st for st in s.steps if st.applies(model))[: failed + 1]
    fault, site = found[0]
    return Failure(s, model, steps, tuple(named), site, fault)


def up_to_failing(f: Failure, guest: Guest, kbuild: KernelBuild) -> Callable[[], str]:
    """The cell's steps before the one that failed, run now; that one, to run with gdb
    attached."""
    for i, step in enumerate(f.steps[:-1], 1):
        execute(step, i, guest, kbuild)
    return lambda: execute(f.steps[-1], len(f.steps), guest, kbuild)


def execute(step: Step, index: int, guest: Guest, kbuild: KernelBuild) -> str:
    """A scenario step run as the runner runs it (its own deadline, its output in the
    guest's logs); what became of it, in words ("" when it passed)."""
    ctx = Context(guest, Deadline(step.timeout or COMMAND_DEADLINE_S), {}, {},
                  arch=guest.arch.name, output_file=guest.logdir / f"step-{index:02d}.out",
                  console_log=guest.logdir / "console.log", kernel=kbuild)
    try:
        problems = step.execute(ctx)
    except LabError as exc:
        return f"error: {exc}"
    return "; ".join(problems) if problems else ""


# ---------------------------------------------------------------- lab debug --core RUN/CELL

def core(spec: str, kernels: Path) -> tuple[Path, Target]:
    """RUN/CELL's vmcore (the first boot that left one) and the Target of the kernel
    the cell booted (its entry under kernels, the cache's kernels directory)."""
    run, cell, _ = _cell(spec)
    found = next((b.logs["vmcore"] for b in cell.boots if "vmcore" in b.logs), None)
    if found is None:
        raise UserError(f"{spec}: no vmcore (a cell keeps one when its kernel panicked, "
                        "and only on a +dbg kernel: --kernel VARIANT+dbg)")
    path = run / found
    if not path.resolve().is_relative_to(run.resolve()) or not path.is_file():
        raise UserError(f"{spec}: its vmcore {found!r} is not a file in {run}")
    if not get_arch(cell.cell.arch).dump_paging:
        raise UserError(f"{spec}: QEMU 7.2 writes {cell.cell.arch} memory dumps at physical "
                        f"addresses, which gdb cannot read; the vmcore is {path}")
    digest = str(cell.kernel.get("hash", ""))
    entry = kernels / f"{cell.cell.arch}-{cell.cell.kernel}-{digest[:12]}"
    try:
        # Only an entry of the cache (gdb runs the entry's gdb scripts, Python).
        inside = entry.resolve().parent == kernels.resolve() and len(digest) >= 12
        kbuild = cached_kernel(entry) if inside else None
    except (OSError, CorruptEntry):
        kbuild = None
    if kbuild is None:
        raise UserError(f"{spec}: the kernel it booted ({cell.cell.kernel}, {digest[:12]}) is "
                        "no longer in the cache: its vmlinux is what gdb reads the core with")
    return path, target(kbuild)


def core_script(t: Target, vmcore: Path) -> str:
    """gdb's commands for a vmcore: vmlinux, the kernel's scripts, the core, the
    modules' symbols, and crash's words for the scripts' commands (log: lx-dmesg,
    ps: lx-ps). Pure."""
    return "\n".join([
        "set pagination off", "set confirm off", "set auto-load python-scripts off",
        f"file {_gdb_path(t.vmlinux)}",
        f"directory {_gdb_path(t.source)}",
        f"source {_gdb_path(t.obj / 'vmlinux-gdb.py')}",
        f"core-file {_gdb_path(vmcore)}",
        "lx-symbols " + " ".join(_gdb_path(d) for d in t.module_dirs),
        "define log", "lx-dmesg", "end",
        "define ps", "lx-ps", "end",
    ]) + "\n"


def open_core(vmcore: Path, t: Target, batch: Path | None, logdir: Path
              ) -> tuple[int, str | None]:
    """gdb on vmcore: with batch, its commands run and gdb's output returned (exit 0 when
    gdb ended well, else 1); without, a person's session at the terminal (its status,
    no output)."""
    logdir.mkdir(parents=True, exist_ok=True)
    script = logdir / "gdb-core.gdb"
    script.write_text(core_script(t, vmcore))
    argv = gdb_argv(script, batch)
    if batch is None:
        return proc.interactive(argv, cwd=logdir), None
    done = proc.run(argv, deadline=CORE_DEADLINE_S, cwd=logdir, check=False,
                    log_path=logdir / "gdb.log")
    return (0 if done.returncode == 0 else 1), done.output


def _cell(spec: str) -> tuple[Path, CellResult, RunResult]:
    """RUN/CELL's run directory and cell; UserError for every way it is wrong."""
    run_dir, _, cell_id = spec.rstrip("/").rpartition("/")
    if not run_dir or not cell_id:
        raise UserError(f"{spec!r}: not RUN/CELL (a run's --out directory, then a cell id)")
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"{run}: no such run directory")
    results = load_results(run)
    cell = next((c for c in results.cells if c.id == cell_id), None)
    if cell is None:
        ids = ", ".join(c.id for c in results.cells[:8]) or "none"
        raise UserError(f"{run}: no cell {cell_id!r} (its cells: {ids})")
    return run, cell, results
