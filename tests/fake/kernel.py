"""A lab whose kernel builds run against tests/fake/linux, in milliseconds.

FakeLab sets up, under a test's tmp_path: a copy of the fake kernel tree; a
bin/ directory first on PATH with fake C compilers (every name the lab calls),
dpkg-deb and depmod; the lab's cache ($LAB_CACHE) holding fake busybox
"packages"; and a lab root ($LAB_ROOT) whose kernel-configs/ suit the fake
tree's Kconfig (images/ and drivers/ are the real ones).
"""

from __future__ import annotations

import signal
import threading

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.host import packages
from lab.artifacts import kconfig
from lab.core import paths
from lab.arches import ARCHES
from lab.artifacts import kernel
from lab.host.command import quiet
from lab.artifacts.kernel import build_kernel
from lab.core.model import KernelVariant

FAKE = Path(__file__).resolve().parent
COMPILERS = ("gcc", "aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc", "i686-linux-gnu-gcc")

#: kernel-configs/ for the fake tree: file name -> lines.
CONFIGS = {
    "base.config": ["# every fake kernel", "CONFIG_PRINTK=y", "CONFIG_MODULES=y"],
    "aarch64.config": ["CONFIG_VIRTIO_MENU=y", "CONFIG_VIRTIO_MMIO=y"],
    "x86_64.config": ["CONFIG_PVH=y"],
    "kunit/kunit.config": ["# KUnit: the fake tree has none"],
    "variants/kpti.aarch64.config": ["CONFIG_UNMAP_KERNEL_AT_EL0=y"],
    "variants/nokpti.aarch64.config": ["# CONFIG_UNMAP_KERNEL_AT_EL0 is not set"],
    "variants/kpti.x86_64.config": ["CONFIG_PAGE_TABLE_ISOLATION=y"],
    "variants/nokpti.x86_64.config": ["# CONFIG_PAGE_TABLE_ISOLATION is not set"],
}


@dataclass
class FakeLab:
    src: Path          # the fake kernel tree (a copy)
    root: Path         # $LAB_ROOT
    cache: Path        # $LAB_CACHE
    tmp: Path

    @property
    def configs(self) -> Path:
        return self.root / "kernel-configs"

    @property
    def kernels(self) -> Path:
        return self.cache / "kernels"

    def entries(self) -> list[str]:
        """Every name under kernels/, finished or not."""
        return sorted(p.name for p in self.kernels.iterdir()) if self.kernels.exists() else []

    def fragment(self, name: str, *lines: str) -> Path:
        path = self.tmp / name
        path.write_text("".join(f"{line}\n" for line in lines))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a child lab process."""
        return {**os.environ, **extra}


def make_fake_lab(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLab:
    src = tmp / "linux"
    shutil.copytree(FAKE / "linux", src, symlinks=True)
    bindir = tmp / "bin"
    bindir.mkdir()
    for name in COMPILERS:
        (bindir / name).symlink_to(FAKE / "bin" / "cc")
    for name in ("dpkg-deb", "depmod"):
        (bindir / name).symlink_to(FAKE / "bin" / name)
    root = tmp / "root"
    for name, lines in CONFIGS.items():
        (root / "kernel-configs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "kernel-configs" / name).write_text("".join(f"{line}\n" for line in lines))
    (root / "images").symlink_to(paths.IMAGES)
    (root / "drivers").symlink_to(paths.DRIVERS)
    cache = tmp / "cache"
    (cache / "debs").mkdir(parents=True)
    for arch in ("amd64", "arm64"):
        for package in packages.GUEST_DEBS:
            (cache / "debs" / f"{package}_1.0_{arch}.deb").write_text(f"fake {package} {arch}\n")
    monkeypatch.setenv("LAB_CACHE", str(cache))
    monkeypatch.setenv("LAB_ROOT", str(root))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    for name in ("FAIL", "HANG", "HANG_PIDFILE", "LAB_KERNEL_SRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(kconfig, "KERNEL_CONFIGS", root / "kernel-configs")
    kernel.compiler_id.cache_clear()
    return FakeLab(src, root, cache, tmp)


def fake_variant(arch, spec) -> KernelVariant:
    return kconfig.resolve_variant(arch, str(spec))


def build_fake_kernel(fake: FakeLab, arch=ARCHES["aarch64"], spec="kpti", progress=quiet):
    """build.build_kernel of the fake tree for an arch profile and a variant spec."""
    return build_kernel(arch, fake_variant(arch, spec), source=fake.src, progress=progress)


def ctrl_c_when_started(pidfile: Path) -> list[int]:
    """In the background: once the hanging fake writes pidfile, note its pid and
    send SIGINT to the main thread, as Ctrl-C does. A real signal, not
    _thread.interrupt_main(), which only flags the handler: a main thread already
    blocked in a wait for the hanging child would never see it. Under load (a fresh
    machine builds kernels beside this tier) the fake took more than 20 s to start:
    the helper gave up, nobody interrupted, and the test hung at the build's deadline.
    The list gets the pid."""
    pid: list[int] = []
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        try:
            pid.append(wait_for_pid(pidfile))
        finally:   # no pid in time: the test fails at once instead of hanging
            signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    return pid


def wait_for_pid(pidfile: Path, within_s: float = 60.0) -> int:
    """The pid a hanging fake target wrote, once it is there."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        text = pidfile.read_text().strip() if pidfile.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"{pidfile}: no pid within {within_s} s")


def gone(pid: int, within_s: float = 10.0) -> bool:
    """True once pid is dead (or a zombie nobody of ours will reap)."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False
