"""Fixtures of the fast tier: the fake QEMU (tests/fake/qemu.py) in place of the real one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab.arches import ARCHES
from lab.artifacts import kernel
from lab.core.model import KernelBuild
from lab.guest import qemu
from lab.guest.guest import Guest
from tests.fake.kernel import FakeLab, make_fake_lab

FAKE_BIN = Path(__file__).resolve().parent.parent / "fake" / "bin"


@pytest.fixture
def fake(tmp_path, monkeypatch) -> FakeLab:
    """A fake lab (tests/fake/kernel.py) for one test; the build layer's remembered
    compiler ids are forgotten after it."""
    yield make_fake_lab(tmp_path, monkeypatch)
    kernel.compiler_id.cache_clear()


@pytest.fixture
def fake_qemu(monkeypatch, tmp_path):
    """The fake QEMU first in PATH, a private cache; returns a function that sets its mode."""
    monkeypatch.setenv("PATH", f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FAKE_QEMU_MODE", raising=False)

    def mode(name: str) -> None:
        monkeypatch.setenv("FAKE_QEMU_MODE", name)

    return mode


@pytest.fixture
def machine(fake_qemu, tmp_path):
    """A factory of Machines (QEMU's argv for arch, on the fake); all shut down at the end."""
    made: list[qemu.Machine] = []

    def make(arch: str = "x86_64") -> qemu.Machine:
        rundir = qemu.make_rundir()
        argv = qemu.command_line(ARCHES[arch], Path("/k/Image"), Path("/k/initramfs.cpio"),
                                 "console=ttyS0", rundir)
        made.append(qemu.Machine(argv, rundir, tmp_path / f"logs-{len(made)}"))
        return made[-1]

    yield make
    for m in made:
        try:
            m.shutdown(hard=True)
        except Exception:
            pass


def fake_build(arch: str, tmp_path: Path) -> KernelBuild:
    """A KernelBuild whose files exist; the fake QEMU never reads them."""
    for name in ("Image", "initramfs.cpio", ".config"):
        (tmp_path / name).write_bytes(b"")
    return KernelBuild(arch=arch, kernel="fake", hash="0" * 12, image=tmp_path / "Image",
                       config=tmp_path / ".config", build_dir=tmp_path, release="6.1.0-fake",
                       initramfs=tmp_path / "initramfs.cpio")


@pytest.fixture
def guest(fake_qemu, tmp_path):
    """A factory of booted guests on the fake QEMU; every one is closed at the end."""
    guests = []

    def boot(arch="x86_64", cmdline=(), **kw):
        g = Guest(fake_build(arch, tmp_path), cmdline, accel="tcg",
                  logdir=tmp_path / f"g{len(guests)}", boot_deadline_s=5, **kw)
        guests.append(g)
        g.__enter__()
        return g

    yield boot
    for g in guests:
        g.close()

