"""lab debug: a guest under gdb, with the symbols of its kernel and modules."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from lab.app import debugging, driverloop, report
from lab.app.commands.options import builds, kernel_src_arg, logs_dir, seconds
from lab.arches import ARCHES, get_arch
from lab.artifacts import build, kconfig
from lab.artifacts.kernel import kernels_dir
from lab.core import inputs
from lab.core.errors import LabError, UserError
from lab.core.model import ArchProfile, KernelBuild, KernelVariant
from lab.guest.guest import Guest
from lab.host import proc

T = TypeVar("T")

#: The command's deadline with --batch.
BATCH_TIMEOUT_S = 300.0
#: A --batch file of gdb commands is text of at most this many bytes.
MAX_BATCH_BYTES = 1024 * 1024


def _batch(path: Path | None) -> Path | None:
    """--batch FILE, read as the lab reads every user file (text, bounded)."""
    if path is not None:
        inputs.read_text(path, MAX_BATCH_BYTES, "--batch")
    return path


def _modules(dirs: list[Path]) -> tuple[Path, ...]:
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"--module {d}: not a directory")
        driverloop.kbuild_modules(d)          # a Kbuild naming a module, or exit 2
    return tuple(d.resolve() for d in dirs)


def _checked_breaks(breaks: list[str]) -> tuple[str, ...]:
    for name in breaks:
        if not debugging.FUNCTION.fullmatch(name):
            raise UserError(f"--break {name!r}: not a function name")
    return tuple(dict.fromkeys(breaks))


def cmd_debug(args) -> int:
    batch = _batch(args.batch)
    if args.core or not (args.arch or args.kernel):
        if len(args.target) != 1:
            raise UserError("lab debug: give --arch and --kernel (then -- CMD), or one "
                            f"RUN/CELL{' after --core' if args.core else ''}"
                            + (f", not {len(args.target)} words" if args.target else ""))
        if args.core:
            return _core(args, args.target[0], batch)
        return _failed_cell(args, args.target[0], batch)
    command = args.target
    if not args.arch or not args.kernel:
        raise UserError("lab debug: --arch and --kernel go together")
    modules = _modules(args.module)
    breaks = _checked_breaks(args.breaks)
    ((arch, variant),) = builds(args.arch, args.kernel)
    logdir = logs_dir(args, "debug")
    kbuild = _kernel(arch, kconfig.with_dbg(arch, variant), args.kernel_src, modules)
    t = debugging.target(kbuild)
    debugging.check_breaks(breaks, t)
    guest = Guest(kbuild, (*debugging.CMDLINE, *args.cmdline.split()), logdir=logdir, gdb=True)
    # A person at gdb may hold the guest for as long as they like: no deadline then.
    timeout = args.timeout or (inputs.MAX_SECONDS if batch is None else BATCH_TIMEOUT_S)
    action = (lambda: guest.run(shlex.join(command), timeout)) if command else None
    with _logs_on_error(guest):
        result, status = _attached(guest, t, breaks, batch, action)
    if result is not None:
        _show(result.output.rstrip("\n"))
        for fault in result.faults:
            report.error(f"kernel {fault.kind} during the command:\n{fault.text}")
    if command and result is None:
        report.warning("the command had not ended when gdb quit: the guest was shut down")
    code = result.exit_code if result is not None else 0
    if status == debugging.NOT_REACHED:
        report.error("no breakpoint was reached: " + ", ".join(breaks))
        return code or 1
    return code


def _kernel(arch: ArchProfile, variant: KernelVariant, source: Path | None,
            modules: tuple[Path, ...]) -> KernelBuild:
    with report.build_progress(f"{arch.name}/{variant.name}") as progress:
        return build.ensure_kernel(arch, variant, source=source, progress=progress,
                                   extra_drivers=modules)


@contextlib.contextmanager
def _logs_on_error(guest: Guest) -> Iterator[None]:
    try:
        with guest:
            yield
    except LabError:
        report.err.print(f"logs: {guest.logdir}")
        raise


def _show(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _attached(guest: Guest, t: debugging.Target, breaks: tuple[str, ...], batch: Path | None,
              action: Callable[[], T] | None) -> tuple[T | None, int]:
    """action with gdb attached; at a terminal (no --batch), the guest's console beside
    gdb: in a tmux pane when gdb runs in tmux, else its path to follow."""
    session = debugging.Session(guest, t, breaks, batch, _show)
    if batch is not None:
        return session.attached(action, terminal=False)
    console = guest.logdir / "console.log"
    pane = _pane_beside(console)
    if pane is None:
        report.err.print(f"the guest's console (a command's output, the kernel log): {console}")
    try:
        return session.attached(action, terminal=True)
    finally:
        if pane is not None:
            proc.run(["tmux", "kill-pane", "-t", pane], deadline=10, check=False)


def _pane_beside(console: Path) -> str | None:
    """A tmux pane beside this one that follows console (tail -F, run by tmux without
    a shell); its id, or None outside tmux or if tmux would not make one."""
    if not os.environ.get("TMUX") or not sys.stdout.isatty():
        return None
    done = proc.run(["tmux", "split-window", "-h", "-d", "-P", "-F", "#{pane_id}",
                     "tail", "-n", "+1", "-F", str(console)], deadline=10, check=False,
                    merge_stderr=False)
    pane = done.output.strip()
    return pane if done.returncode == 0 and re.fullmatch(r"%\d+", pane) else None


def _failed_cell(args, spec: str, batch: Path | None) -> int:
    """lab debug RUN/CELL: the cell's steps again on the +dbg form of its kernel, gdb
    attached before the step that failed, a breakpoint where its fault happened."""
    if args.breaks:
        raise UserError("lab debug RUN/CELL breaks where the cell's fault happened: drop "
                        "--break")
    f = debugging.failure(spec, _modules(args.module), args.kernel_src)
    arch = get_arch(f.model.arch)
    assert f.model.variant is not None      # a loaded scenario's cells are resolved
    kbuild = _kernel(arch, kconfig.with_dbg(arch, f.model.variant), args.kernel_src,
                     f.drivers)
    t = debugging.target(kbuild)
    breaks = (f.site.function,)
    debugging.check_breaks(breaks, t)
    report.err.print(f"{spec}: {f.fault.kind} in {f.site.function}"
                     f"{f' [{f.site.module}]' if f.site.module else ''}; reproducing its "
                     f"{len(f.steps)} step(s) on {arch.name}/{kbuild.kernel}, gdb attached "
                     f"before {f.steps[-1].name!r}")
    guest = Guest(kbuild, (*debugging.CMDLINE, *f.model.cmdline_words),
                  logdir=logs_dir(args, "debug"), gdb=True,
                  boot_deadline_s=f.scenario.boot_timeout)
    with _logs_on_error(guest):
        failing = debugging.up_to_failing(f, guest, kbuild)
        outcome, status = _attached(guest, t, breaks, batch, failing)
    if outcome:
        report.err.print(f"the step {f.steps[-1].name!r}: {outcome}")
    if status == debugging.NOT_REACHED:
        report.error(f"the reproduction did not reach {f.site.function}")
        return 1
    return 0


def _core(args, spec: str, batch: Path | None) -> int:
    """lab debug --core RUN/CELL: gdb on the cell's vmcore, with its kernel's vmlinux,
    gdb scripts and modules; --batch FILE's commands (bt, log, ps), else a person's
    session."""
    if args.breaks or args.module or args.arch or args.kernel:
        raise UserError("lab debug --core reads the cell's own vmcore and kernel: drop "
                        "--arch, --kernel, --module and --break")
    vmcore, t = debugging.core(spec, kernels_dir())
    code, output = debugging.open_core(vmcore, t, batch, logs_dir(args, "core"))
    if output is not None:
        _show(output.rstrip("\n"))
    return code


def register(sub) -> None:
    d = sub.add_parser(
        "debug", help="a guest under gdb: the +dbg kernel's symbols, its modules', "
                      "breakpoints, then a command",
        description="lab debug --arch A --kernel K [--break FUNC]... [--batch FILE] "
                    "[-- CMD ...], or lab debug [--batch FILE] RUN/CELL")
    d.add_argument("--arch", help=f"one of {', '.join(ARCHES)}")
    d.add_argument("--kernel", help="a variant or fragment; its +dbg form is booted "
                                    "(debug information, the kernel's gdb scripts)")
    kernel_src_arg(d)
    d.add_argument("--cmdline", default="", help="extra kernel command-line words")
    d.add_argument("--module", action="append", default=[], type=Path, metavar="DIR",
                   help="an out-of-tree module directory, built for the kernel and put in "
                        "the guest; gdb gets its symbols when it loads (repeatable)")
    d.add_argument("--break", dest="breaks", action="append", default=[], metavar="FUNC",
                   help="stop where FUNC starts, in the kernel or a module (repeatable)")
    d.add_argument("--batch", type=Path, metavar="FILE",
                   help="gdb runs FILE's commands at the first stop, then lets the guest "
                        "go; without it, gdb is yours at the terminal")
    d.add_argument("--core", action="store_true",
                   help="open RUN/CELL's vmcore (left by a +dbg kernel's panic) in gdb with the "
                        "kernel's scripts: bt, log, ps")
    d.add_argument("--timeout", type=seconds("--timeout"),
                   help=f"deadline of the command in seconds (default {BATCH_TIMEOUT_S:g} "
                        "with --batch; none at a terminal, where gdb may hold the guest)")
    d.add_argument("--logs", type=Path, help="keep the guest's and gdb's logs here "
                                             "(default: a new directory under $LAB_CACHE/logs)")
    d.add_argument("target", nargs="*", metavar="RUN/CELL | -- CMD",
                   help="a failed cell of a run (its --out directory, then the cell id): "
                        "reproduced up to the step that failed, with a breakpoint where its "
                        "fault happened; or a command to run once the breakpoints are set")
    d.set_defaults(func=cmd_debug)
