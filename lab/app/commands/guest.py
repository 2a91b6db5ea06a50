"""lab exec and lab shell: one guest, one command or a person at its shell."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from lab.app import report, terminal
from lab.app.commands.options import (
    KERNEL_HELP,
    builds,
    ensure,
    int_in,
    kernel_src_arg,
    logs_dir,
    seconds,
)
from lab.arches import ARCHES
from lab.artifacts import build
from lab.core import inputs
from lab.core.errors import LabError, UserError
from lab.core.model import GuestFile
from lab.guest.guest import Guest


def _guest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", required=True, help=f"one of {', '.join(ARCHES)}")
    p.add_argument("--kernel", required=True, help=KERNEL_HELP)
    p.add_argument("--cmdline", default="", help="extra kernel command-line words, e.g. 'kpti=1'")
    kernel_src_arg(p)
    p.add_argument("--accel", choices=("tcg", "kvm"),
                   help="override the accelerator (default: KVM only where the probe passed)")
    p.add_argument("--logs", type=Path, help="keep the guest's logs here "
                                             "(default: a new directory under $LAB_CACHE/logs)")
    p.add_argument("--memory", type=int_in("--memory", *inputs.MEMORY_MB), metavar="MB",
                   help=f"guest memory in MiB, {inputs.MEMORY_MB[0]} to {inputs.MEMORY_MB[1]} "
                        "(default: the arch's)")
    p.add_argument("--add", action="append", default=[], metavar="SRC[:DEST]", type=_guest_file,
                   help="a host file or directory the guest has at DEST (default /root/NAME) "
                        "from boot, in its initramfs (repeatable; cached by content)")
    p.add_argument("--sysctl", action="append", default=[], metavar="NAME=VALUE", type=_sysctl,
                   help="set a sysctl once the guest is up, e.g. vm.overcommit_memory=1 "
                        "(repeatable)")
    p.add_argument("--cold", action="store_true",
                   help="boot the kernel; by default the guest is restored from a snapshot "
                        "template of the same kernel, initramfs, command line and machine "
                        "(made by a cold boot the first time)")


def _guest_file(text: str) -> GuestFile:
    f = build.guest_file(text)
    if not f.src.exists():
        raise UserError(f"--add {text}: no such file or directory: {f.src}")
    return f


def _sysctl(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if problem := inputs.sysctl_problem(name, value) if sep else "not NAME=VALUE":
        raise UserError(f"--sysctl {text!r}: {problem}")
    return name, value


def _guest(args, what: str, **kw) -> Guest:
    ((arch, variant),) = builds(args.arch, args.kernel)
    logdir = logs_dir(args, what)            # checked before the build
    kbuild = ensure(arch, variant, source=args.kernel_src, files=tuple(args.add))
    return Guest(kbuild, tuple(args.cmdline.split()), logdir=logdir, accel=args.accel,
                 memory_mb=args.memory, sysctls=tuple(args.sysctl), restore=not args.cold, **kw)


def cmd_exec(args) -> int:
    command = args.command_argv[1:] if args.command_argv[:1] == ["--"] else args.command_argv
    if not command:
        raise UserError("lab exec: no command given (lab exec --arch A --kernel K -- CMD ...)")
    guest = _guest(args, "exec")
    try:
        with guest:
            result = guest.run(shlex.join(command), args.timeout)
    except LabError:
        report.err.print(f"logs: {guest.logdir}")   # report's consoles print text as it is
        raise
    if args.json:
        assert guest.facts is not None   # set by the boot
        report.print_json({"exit_code": result.exit_code, "output": result.output,
                           "output_file": str(result.output_file) if result.output_file else None,
                           "boot": guest.facts.to_json(), "logs": str(guest.logdir),
                           "faults": [f.__dict__ for f in result.faults]})
    elif result.output_file:                   # the whole output, not its head in memory
        sys.stdout.flush()
        with open(result.output_file, "rb") as spilled:
            shutil.copyfileobj(spilled, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(result.output)
        for fault in result.faults:
            report.error(f"kernel {fault.kind} during the command:\n{fault.text}")
    return result.exit_code


def cmd_shell(args) -> int:
    guest = _guest(args, "shell",
                   echo_kernel=lambda text: (sys.stdout.write(text.replace("\n", "\r\n")),
                                             sys.stdout.flush()))
    with guest:
        assert guest.shell is not None   # set by the boot
        report.shell_banner(f"{args.arch}/{args.kernel}", guest.facts, guest.logdir)
        if guest.kernel is not None:
            guest.kernel.echo_all = True
        terminal.interact(guest.shell)
    report.err.print("\nguest shut down")
    return 0


def register(sub) -> None:
    e = sub.add_parser("exec", help="boot a guest, run one command, shut down; "
                                    "exits with its exit code")
    _guest_args(e)
    e.add_argument("--json", action="store_true",
                   help="print one JSON object: exit_code, output, boot")
    e.add_argument("--bisect", action="store_true",
                   help="exit as `git bisect run` expects: 0 good, 1 to 124 bad (a panic or "
                        "hang too), 125 skip (the kernel does not build, any other lab "
                        "error), never 126 or more")
    e.add_argument("--timeout", type=seconds("--timeout"), default=300.0,
                   help=f"deadline of the command in seconds (default 300: 20 MB of output take "
                        f"50 s on x86_64; at most {inputs.MAX_SECONDS})")
    e.add_argument("command_argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    e.set_defaults(func=cmd_exec)

    s = sub.add_parser("shell", help="an interactive shell in a guest (Ctrl-] leaves)")
    _guest_args(s)
    s.set_defaults(func=cmd_shell)
