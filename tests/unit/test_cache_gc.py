"""The cache's bound: lab cache lists it, gc removes the least recently used, and
never what a running lab process uses (no QEMU, no kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.core.errors import UserError
from lab.host import cache, gc
from tests.unit.inprocess import lab

MIB = 1 << 20


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    root.mkdir()
    monkeypatch.setenv("LAB_CACHE", str(root))
    return root


def entry(root: Path, name: str, mib: int, age_s: float) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "blob").write_bytes(os.urandom(mib * MIB))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def holder(path: Path) -> subprocess.Popen:
    """Another lab process that uses path until it is killed."""
    p = subprocess.Popen([sys.executable, "-c",
                          "import sys, time\nfrom lab.host import cache\n"
                          "cache.hold(__import__('pathlib').Path(sys.argv[1]))\n"
                          "print('held', flush=True)\ntime.sleep(600)", str(path)],
                         stdout=subprocess.PIPE, text=True, env=os.environ)
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


def test_units_are_listed_least_recently_used_first_with_their_sizes(store):
    entry(store, "kernels/new", 2, 10)
    entry(store, "kernels/old", 1, 1000)
    (store / "debs").mkdir()
    (store / "debs" / "busybox.deb").write_bytes(b"x" * MIB)
    entry(store, "kernels/.partial-building", 1, 5000)
    names = [(u.name, u.size // MIB) for u in gc.units()]
    assert names == [("kernels/old", 1), ("kernels/new", 2)]


def test_gc_removes_the_least_recently_used_until_the_cache_fits(store):
    for i, age in enumerate((3000, 2000, 1000)):
        entry(store, f"kernels/k{i}", 2, age)
    removed, left = gc.collect(4 * MIB + MIB // 2)
    assert [u.name for u in removed] == ["kernels/k0"]
    assert not (store / "kernels" / "k0").exists() and (store / "kernels" / "k1").exists()
    assert left <= 4 * MIB + MIB // 2


def test_a_use_counts_as_recent_and_what_a_running_lab_holds_is_never_removed(store):
    old = entry(store, "kernels/old", 2, 5000)
    entry(store, "kernels/mid", 2, 3000)
    cache.hold(old)                   # this process uses it now: last use is now
    assert [u.name for u in gc.units()][-1] == "kernels/old"
    other = entry(store, "src/linux", 2, 9000)
    p = holder(other)
    try:
        removed, left = gc.collect(0)
        assert {u.name for u in removed} == {"kernels/mid"}
        assert other.exists() and old.exists() and left > 0
        assert {u.name for u in gc.units() if u.held} == {"src/linux", "kernels/old"}
    finally:
        p.kill()
        p.wait()
    assert [u.name for u in gc.collect(0)[0]] == ["src/linux"]


def test_an_image_with_files_is_a_unit_of_its_own(store):
    kdir = entry(store, "kernels/k", 1, 100)
    images = kdir / "with-files"
    images.mkdir()
    (images / "initramfs-a+b.cpio").write_bytes(b"0" * 3 * MIB)
    (images / "initramfs-a+b.cpio.manifest.json").write_text("{}")
    sizes = {u.name: u.size // MIB for u in gc.units()}
    assert sizes == {"kernels/k": 1, "kernels/k/with-files/initramfs-a+b.cpio": 3}
    os.utime(images / "initramfs-a+b.cpio", (1, 1))
    removed, _ = gc.collect(2 * MIB)
    assert [u.name for u in removed] == ["kernels/k/with-files/initramfs-a+b.cpio"]
    assert list(images.iterdir()) == [] and (kdir / "blob").exists()


def test_each_initramfs_image_of_a_kernel_is_a_unit_and_a_stale_one_goes_first(store):
    """Every change of the guest's tools or drivers packs a new image beside the
    kernel; the ones nothing uses any more go before the kernel they belong to."""
    kdir = entry(store, "kernels/aarch64-nokpti-0123456789ab", 2, 100)
    for name, age in (("initramfs-old.cpio", 5000), ("initramfs-new.cpio", 10)):
        (kdir / name).write_bytes(b"0" * MIB)
        (kdir / f"{name}.manifest.json").write_text("{}")
        os.utime(kdir / name, (time.time() - age,) * 2)
    os.utime(kdir, (time.time() - 100,) * 2)
    sizes = {u.name: u.size // MIB for u in gc.units()}
    assert sizes == {"kernels/aarch64-nokpti-0123456789ab": 2,
                     "kernels/aarch64-nokpti-0123456789ab/initramfs-old.cpio": 1,
                     "kernels/aarch64-nokpti-0123456789ab/initramfs-new.cpio": 1}
    removed, _ = gc.collect(3 * MIB + MIB // 2)
    assert [u.name for u in removed] == ["kernels/aarch64-nokpti-0123456789ab/"
                                         "initramfs-old.cpio"]
    assert sorted(p.name for p in kdir.iterdir()) == [
        "blob", "initramfs-new.cpio", "initramfs-new.cpio.manifest.json"]
    p = holder(kdir / "initramfs-new.cpio")          # a running lab boots from it
    try:
        removed, _ = gc.collect(0)
        assert [u.name for u in removed] == []       # its kernel is in use through it
        assert (kdir / "initramfs-new.cpio").exists()
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("text, size", [("1G", 1 << 30), ("500M", 500 * MIB), ("1.5GiB",
                                        3 << 29), ("1024", 1024), ("2k", 2048), ("1 TB", 1 << 40)])
def test_sizes_are_read_as_people_write_them(text, size):
    assert gc.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "nan", "-1G", "1e99", "9" * 400, "1X", "G", "inf"])
def test_a_bad_size_is_refused(text):
    with pytest.raises(UserError, match="not a size"):
        gc.parse_size(text)


def test_lab_cache_gc_brings_the_cache_under_max_size(store):
    for i in range(4):
        entry(store, f"logs/run-{i}", 1, 1000 - i)
    r = lab("cache", "gc", "--max-size", "2.5M", env={"LAB_CACHE": str(store)})
    assert r.returncode == 0, r.stderr
    assert "removed logs/run-0" in r.stdout and "removed logs/run-1" in r.stdout
    assert sorted(p.name for p in (store / "logs").iterdir()) == ["run-2", "run-3"]
    listing = lab("cache", "--json", env={"LAB_CACHE": str(store)})
    assert [u["name"] for u in __import__("json").loads(listing.stdout)] == [
        "logs/run-2", "logs/run-3"]
    bad = lab("cache", "gc", "--max-size", "lots", env={"LAB_CACHE": str(store)})
    assert bad.returncode == 2 and "not a size" in bad.stderr


def test_a_settled_units_size_is_remembered_until_its_directory_changes(tmp_path, monkeypatch):
    """gc runs after every build: it must not walk 300,000 unchanged files each time."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path))
    entry = tmp_path / "kernels" / "aarch64-nokpti-0123456789ab"
    (entry / "obj").mkdir(parents=True)
    (entry / "obj" / "big").write_bytes(b"x" * 100_000)
    first = {u.name: u.size for u in gc.units()}
    walked: list[Path] = []
    real = gc._disk_size
    monkeypatch.setattr(gc, "_disk_size", lambda p, s=None: walked.append(p) or real(p, s))
    assert {u.name: u.size for u in gc.units()} == first and entry not in walked
    (entry / "vmlinux").write_bytes(b"y" * 50_000)               # the entry's top level
    again = {u.name: u.size for u in gc.units()}
    name = str(entry.relative_to(tmp_path))
    assert entry in walked and again[name] > first[name]
    (tmp_path / "locks" / gc.SIZES).write_text('{"kernels/x": "garbage"')   # never trusted
    assert {u.name: u.size for u in gc.units()} == again
