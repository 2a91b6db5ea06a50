"""Command-line interface: parsing and exit codes only. The one sys.exit."""

from __future__ import annotations

import argparse
import sys

from lab import build, hostdeps, kconfig, report
from lab.arches import ARCHES, get_arch
from lab.errors import LabError, UserError
from lab.model import KernelBuild

DEFAULT_VARIANTS = ("kpti", "nokpti")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # bad usage is bad input: exit 2, one line
        self.print_usage(sys.stderr)
        raise UserError(f"{self.prog}: {message}")


def _builds(arch: str | None, kernel: str | None) -> list[tuple]:
    """(arch profile, variant) pairs for --arch/--kernel, validated before any work."""
    arches = [get_arch(arch)] if arch else list(ARCHES.values())
    kernels = [kernel] if kernel else list(DEFAULT_VARIANTS)
    return [(a, kconfig.resolve_variant(a, k)) for a in arches for k in kernels]


def ensure_kernel(arch_name: str, kernel: str) -> KernelBuild:
    """A cached or freshly built kernel + initramfs, with progress on stderr."""
    arch = get_arch(arch_name)
    variant = kconfig.resolve_variant(arch, kernel)
    with report.build_progress(f"{arch.name}/{variant.name}") as progress:
        return build.ensure(arch, variant, progress)


def cmd_build(args) -> int:
    for arch, variant in _builds(args.arch, args.kernel):
        with report.build_progress(f"{arch.name}/{variant.name}") as progress:
            result = build.ensure(arch, variant, progress, args.jobs)
        report.out.print(f"{result.arch}/{result.kernel}: {result.image}  "
                         f"initramfs {result.initramfs.name}")
    return 0


def cmd_kernels(args) -> int:
    builds = build.list_kernels()
    if args.json:
        report.print_json([b.to_json() for b in builds])
    else:
        report.kernels_table(builds)
    return 0


def cmd_doctor(args) -> int:
    from lab import qemu
    if args.install:
        hostdeps.install(hostdeps.missing())
    rows = [(d.what, d.package, d.found()) for d in hostdeps.DEPS]
    accel = qemu.accel_status(probe=True)
    report.doctor_table(rows, accel)
    return 0 if all(ok for _, _, ok in rows) else 2


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lab", description="A QEMU hardware lab for kernel and driver developers.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("build", help="build kernels and guest images (default: every arch x {kpti, nokpti})")
    b.add_argument("--arch", help=f"one of {', '.join(ARCHES)}")
    b.add_argument("--kernel", help="a variant name from kernel-configs/variants/, or a path to a .config fragment")
    b.add_argument("-j", "--jobs", type=int, help="parallel make jobs (default: CPU count)")
    b.set_defaults(func=cmd_build)

    k = sub.add_parser("kernels", help="list built kernels")
    k.add_argument("--json", action="store_true", help="print JSON")
    k.set_defaults(func=cmd_kernels)

    d = sub.add_parser("doctor", help="check host dependencies and the accelerator")
    d.add_argument("--install", action="store_true", help="install what is missing with apt")
    d.set_defaults(func=cmd_doctor)
    return p


def main(argv: list[str] | None = None) -> None:
    try:
        args = parser().parse_args(argv)
        code = args.func(args)
    except LabError as exc:
        report.error(str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        report.error("interrupted")
        code = 130
    sys.exit(code)
