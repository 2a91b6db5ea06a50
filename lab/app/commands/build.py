"""lab build, lab kernels, lab doctor: kernels and guest images, what is built,
and what the host has."""

from __future__ import annotations

from lab.app import report
from lab.app.commands.options import (
    KERNEL_HELP,
    builds,
    directory,
    ensure,
    int_in,
    kernel_src_arg,
)
from lab.arches import ARCHES
from lab.artifacts import build
from lab.core import inputs
from lab.host import facts, install, packages


def cmd_build(args) -> int:
    for arch, variant in builds(args.arch, args.kernel):
        result = ensure(arch, variant, args.jobs, args.kernel_src)
        assert result.initramfs is not None   # ensure_kernel builds it
        report.out.print(f"{result.arch}/{result.kernel}: {result.image}  "
                         f"initramfs {result.initramfs.name}")
    return 0


def cmd_kernels(args) -> int:
    builds = build.list_kernels(
        on_corrupt=lambda bad: report.warning(f"corrupt, not listed (its next use rebuilds "
                                              f"it): {bad}"))
    if args.kernel_src is not None:
        builds = [b for b in builds if b.source_path == str(args.kernel_src)]
    if args.json:
        report.print_json([b.to_json() for b in builds])
    else:
        report.kernels_table(builds)
    return 0


def cmd_doctor(args) -> int:
    if args.install:
        with report.build_progress("doctor --install") as progress:
            install.install(packages.missing(), progress)
    src = None
    if args.strict and packages.KERNEL_TARBALL.exists():
        with report.build_progress("doctor --strict") as progress:
            src, _ = build.kernel_source(progress=progress)    # checkpatch.pl's tree
    rows = install.status(args.strict, src)
    accel = facts.accel_status(probe=True)
    report.doctor_table([(d.what, d.package, why) for d, why in rows], accel)
    return 0 if not any(why for _, why in rows) else 2


def register(sub) -> None:
    b = sub.add_parser("build", help="build kernels and guest images "
                                     "(default: every arch x {kpti, nokpti})")
    b.add_argument("--arch", help=f"one of {', '.join(ARCHES)}")
    b.add_argument("--kernel", help=KERNEL_HELP)
    b.add_argument("-j", "--jobs", type=int_in("--jobs", 1, inputs.MAX_JOBS),
                   help=f"parallel make jobs, 1 to {inputs.MAX_JOBS} (default: CPU count)")
    kernel_src_arg(b)
    b.set_defaults(func=cmd_build)

    k = sub.add_parser("kernels", help="list built kernels")
    k.add_argument("--json", action="store_true", help="print JSON")
    k.add_argument("--kernel-src", type=directory("--kernel-src"), metavar="DIR",
                   help="only the kernels built from this tree")
    k.set_defaults(func=cmd_kernels)

    d = sub.add_parser("doctor", help="check host dependencies and the accelerator")
    d.add_argument("--install", action="store_true", help="install what is missing with apt")
    d.add_argument("--strict", action="store_true",
                   help="also run each tool as the lab runs it, on a tiny input (a program "
                        "per ABI, spatch with an OCaml and a Python script, sparse, "
                        "checkpatch, QEMU's aarch64 board), and fail naming the package of "
                        "any that fails")
    d.set_defaults(func=cmd_doctor)
