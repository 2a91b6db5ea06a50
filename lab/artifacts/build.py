"""Kernel, module, guest-tool and initramfs builds, cached by content hash.

    from lab.artifacts import build
    kbuild = build.ensure_kernel("aarch64", "kpti")      # kernel + initramfs

The package, by what each module owns:
- cache:   the cache layout, its locks, `entry()` (the one protocol for a
           cache entry: built once, checked against its manifest on every
           use, rebuilt when corrupt) and the locked, atomic JSON write;
- command: progress callbacks and one build command through lab.host.proc;
- source:  the kernel source (Debian's tarball, or a user's tree);
- kernel:  configure, verify, compile and record a kernel;
- image:   guest tools, busybox and bash, modules and the initramfs.
"""

from __future__ import annotations

from pathlib import Path

from lab.arches import get_arch
from lab.artifacts import kconfig
from lab.artifacts.extra import guest_file, with_files
from lab.artifacts.image import (
    Cpio,
    build_initramfs,
    build_module,
    build_tools,
    drivers,
    guest_binary,
    list_kernels,
)
from lab.artifacts.kernel import (
    build_kernel,
    compiler_id,
    kernel_key,
    kernel_meta,
    option_needs,
    toolchain_id,
    verify_kernel,
)
from lab.artifacts.source import kernel_source
from lab.core.model import ArchProfile, KernelBuild, KernelVariant
from lab.host import gc
from lab.host.cache import RECIPE, CorruptEntry, hold
from lab.host.command import REPRODUCIBLE_ENV, Progress, quiet

__all__ = [
    "RECIPE",
    "REPRODUCIBLE_ENV",
    "CorruptEntry",
    "Cpio",
    "Progress",
    "build_initramfs",
    "build_kernel",
    "build_module",
    "build_tools",
    "compiler_id",
    "drivers",
    "ensure_kernel",
    "guest_binary",
    "guest_file",
    "hold",
    "kernel_key",
    "kernel_meta",
    "option_needs",
    "kernel_source",
    "list_kernels",
    "quiet",
    "toolchain_id",
    "verify_kernel",
    "with_files",
]


def ensure_kernel(arch: ArchProfile | str, variant: KernelVariant | str, *,
                  source: Path | None = None, progress: Progress = quiet,
                  jobs: int | None = None,
                  extra_drivers: tuple[Path, ...] = ()) -> KernelBuild:
    """A kernel and its initramfs, building only what is missing.

    arch is a profile or its name; variant a KernelVariant or a spec (a
    variant name or a fragment path, see kconfig.resolve_variant). source is
    a user's kernel tree, None for Debian's linux-source. progress is called
    only when something is built; after a build, the cache is brought within
    its bound (gc.enforce), never removing what a running lab uses.
    """
    profile = arch if isinstance(arch, ArchProfile) else get_arch(arch)
    resolved = (variant if isinstance(variant, KernelVariant)
                else kconfig.resolve_variant(profile, variant))
    built: list[str] = []

    def track(phase: str, detail: str) -> None:
        built.append(phase)
        progress(phase, detail)

    kbuild = build_kernel(profile, resolved, source=source, progress=track, jobs=jobs)
    kbuild = build_initramfs(kbuild, track, extra_drivers)
    if built:                       # something new in the cache: keep it within its bound
        gc.enforce(progress)
    return kbuild
