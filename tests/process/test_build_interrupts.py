"""Builds against the fake kernel tree (tests/fake/linux) that a deadline or a signal
stops: the hanging fake make is killed with its process group, and no cache entry is
left. (From tests/unit/test_build.py and tests/unit/test_build_corrupt.py.)"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from lab.arches import ARCHES
from lab.artifacts import build, image, kconfig, kernel
from lab.core.errors import BuildError
from tests.conftest import LAB, ROOT
from tests.fake.kernel import FakeLab, ctrl_c_when_started, gone, wait_for_pid
from tests.fake.kernel import build_fake_kernel as build_kernel
from tests.fake.kernel import fake_variant as variant

A64 = ARCHES["aarch64"]


def ensure(fake: FakeLab, spec: str = "kpti"):
    return build.ensure_kernel(A64, variant(A64, spec), source=fake.src, progress=build.quiet)


def truncate(path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


# ---------------------------------------------------------------- a kernel build

def test_a_build_that_hangs_silently_is_killed_at_its_deadline(fake, monkeypatch):
    pidfile = fake.tmp / "hang.pid"
    monkeypatch.setenv("HANG", "Image")
    monkeypatch.setenv("HANG_PIDFILE", str(pidfile))
    monkeypatch.setitem(kernel.DEADLINE_S, "compile", 1.0)
    started = time.monotonic()
    with pytest.raises(BuildError) as err:
        build_kernel(fake)
    assert time.monotonic() - started < 10
    assert "compile: did not finish within its deadline of 1 s (killed)" in str(err.value)
    assert gone(int(pidfile.read_text()))
    assert all(name.startswith(".partial-") for name in fake.entries())


def test_ctrl_c_during_a_build_kills_make_and_leaves_no_entry(fake, monkeypatch):
    pidfile = fake.tmp / "hang.pid"
    monkeypatch.setenv("HANG", "Image")
    monkeypatch.setenv("HANG_PIDFILE", str(pidfile))
    pid = ctrl_c_when_started(pidfile)
    with pytest.raises(KeyboardInterrupt):
        build_kernel(fake)
    assert gone(pid[0])
    assert fake.entries() == []                  # no entry, and no scratch either
    monkeypatch.delenv("HANG")
    assert build_kernel(fake).image.exists()      # the next build does it all


def test_sigint_to_a_lab_build_process_kills_its_make_and_the_next_build_redoes_it(fake):
    pidfile = fake.tmp / "hang.pid"
    argv = [*LAB, "build", "--arch", "aarch64", "--kernel", "kpti"]
    child = subprocess.Popen([*argv, "--kernel-src", str(fake.src)], cwd=ROOT,
                             env=fake.env(HANG="Image", HANG_PIDFILE=str(pidfile)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = wait_for_pid(pidfile)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 130, err
    assert "interrupted" in err
    assert gone(pid)
    assert fake.entries() == []
    # $LAB_KERNEL_SRC is --kernel-src's default
    again = subprocess.run(argv, cwd=ROOT, env=fake.env(LAB_KERNEL_SRC=str(fake.src)),
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0, again.stderr
    (name,) = fake.entries()
    assert f"aarch64/kpti: {fake.kernels / name / 'Image'}  initramfs initramfs-" in again.stdout


# ---------------------------------------------------------------- item 14, the build half

def test_ctrl_c_while_a_corrupt_kernel_is_rebuilt_leaves_no_entry(fake, monkeypatch):
    first = ensure(fake)
    truncate(first.image, 10)
    pidfile = fake.tmp / "hang.pid"
    monkeypatch.setenv("HANG", "Image")
    monkeypatch.setenv("HANG_PIDFILE", str(pidfile))
    pid = ctrl_c_when_started(pidfile)
    with pytest.raises(KeyboardInterrupt):
        ensure(fake)
    assert gone(pid[0]) and fake.entries() == []
    monkeypatch.delenv("HANG")
    assert ensure(fake).image.read_bytes() == (first.build_dir / A64.image_path).read_bytes()


def test_ctrl_c_during_an_initramfs_build_kills_make_and_leaves_no_image(fake, monkeypatch):
    kb = build.build_kernel(A64, kconfig.resolve_variant(A64, "kpti"), source=fake.src)
    pidfile = fake.tmp / "hang.pid"
    monkeypatch.setenv("HANG", "modules_install")
    monkeypatch.setenv("HANG_PIDFILE", str(pidfile))
    pid = ctrl_c_when_started(pidfile)
    with pytest.raises(KeyboardInterrupt):
        build.build_initramfs(kb)
    assert gone(pid[0])
    left = sorted(p.name for p in kb.image.parent.iterdir())
    assert left == ["Image", "build.log", "config", "manifest.json", "meta.json", "obj"]


def test_a_silent_module_build_is_killed_at_its_deadline(fake, monkeypatch):
    kb = build.build_kernel(A64, kconfig.resolve_variant(A64, "kpti"), source=fake.src)
    pidfile = fake.tmp / "hang.pid"
    monkeypatch.setenv("HANG", "modules_install")
    monkeypatch.setenv("HANG_PIDFILE", str(pidfile))
    monkeypatch.setitem(image.DEADLINE_S, "modules_install", 1.0)
    with pytest.raises(BuildError, match="modules_install: did not finish within its "
                                         "deadline of 1 s"):
        build.build_initramfs(kb)
    assert gone(int(pidfile.read_text()))
    assert not list(kb.image.parent.glob("initramfs-*"))
