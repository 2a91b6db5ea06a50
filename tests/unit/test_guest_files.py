"""Host files in a guest's initramfs (lab exec --add, a scenario's files:), and the
sysctl: key: what is added, what is refused, and the cache (no QEMU needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lab.artifacts import build
from lab.artifacts.image import Cpio
from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import GuestFile, KernelBuild
from lab.scenario import scenario


def base_build(tmp_path: Path) -> KernelBuild:
    cpio = Cpio()
    cpio.dir("bin")
    cpio.file("init", b"#!/bin/sh\n", 0o755)
    image = tmp_path / "kernel" / "initramfs-base.cpio"
    image.parent.mkdir(exist_ok=True)
    image.write_bytes(cpio.finish())
    return KernelBuild("aarch64", "nokpti", "0" * 64, tmp_path / "kernel" / "Image",
                       tmp_path / "kernel" / ".config", tmp_path / "kernel", "6.1", image)


def listing(data: bytes) -> dict[str, str]:
    """name -> mode letters, of one newc archive, as GNU cpio lists it."""
    r = subprocess.run(["cpio", "-itv"], input=data, capture_output=True, check=True)
    return {f[8]: f[0] for f in (line.split() for line in r.stdout.decode().splitlines())}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "data").write_bytes(b"\x00\x01" * 5000)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("/etc/passwd")      # added as a link, never followed
    return root


def test_files_are_appended_as_a_second_archive_under_their_destination(tmp_path, tree):
    kbuild = base_build(tmp_path)
    got = build.with_files(kbuild, (GuestFile(tree, "/opt/t"),))
    assert got.initramfs != kbuild.initramfs
    base, whole = kbuild.initramfs.read_bytes(), got.initramfs.read_bytes()
    assert whole.startswith(base) and listing(base) == listing(whole)   # cpio stops at one
    names = listing(whole[len(base):])
    assert names["opt"].startswith("d") and names["opt/t"].startswith("d")
    assert names["opt/t/run.sh"] == "-rwxr-xr-x" and names["opt/t/sub/data"].startswith("-rw")
    assert names["opt/t/link"].startswith("l")
    assert b"root:" not in got.initramfs.read_bytes()    # /etc/passwd's content stayed home


def test_the_image_is_cached_by_content_and_a_change_makes_a_new_one(tmp_path, tree):
    kbuild = base_build(tmp_path)
    files = (GuestFile(tree, "/opt/t"),)
    first = build.with_files(kbuild, files).initramfs
    assert build.with_files(kbuild, files).initramfs == first
    (tree / "sub" / "data").write_bytes(b"changed")
    assert build.with_files(kbuild, files).initramfs != first
    assert build.with_files(kbuild, ()) is kbuild


def test_a_fifo_is_refused_and_a_missing_source_named(tmp_path, tree):
    os.mkfifo(tree / "fifo")
    with pytest.raises(UserError, match=r"fifo.*cannot add|cannot add.*FIFO|not a regular"):
        build.with_files(base_build(tmp_path), (GuestFile(tree, "/opt/t"),))
    with pytest.raises(UserError, match="nope: cannot add to the guest"):
        build.with_files(base_build(tmp_path), (GuestFile(tmp_path / "nope", "/opt/t"),))


@pytest.mark.parametrize("text, expect", [
    ("/a/b:/opt/x", GuestFile(Path("/a/b"), "/opt/x")),
    ("/a/b", GuestFile(Path("/a/b"), "/root/b")),
    ("/a:b:/opt//x/", GuestFile(Path("/a:b"), "/opt/x")),
])
def test_add_takes_src_and_an_optional_dest(text, expect):
    assert build.guest_file(text) == expect


@pytest.mark.parametrize("dest, problem", [
    ("opt/x", "not an absolute guest path"), ("/opt/../x", "has a `..`"),
    ("/", "the guest's root"), ("/a\nb", "not an absolute guest path"),
])
def test_a_destination_outside_the_guests_tree_is_refused(dest, problem):
    with pytest.raises(ValueError, match=problem):
        inputs.guest_path(dest)
    with pytest.raises(UserError, match=problem):
        build.guest_file(f"/tmp:{dest}")


def test_a_scenario_names_files_per_arch_and_sysctls(tmp_path):
    for arch in ("aarch64", "x86_64"):
        (tmp_path / "out" / arch).mkdir(parents=True)
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmatrix: {arch: [aarch64, x86_64], kernel: [nokpti]}\n"
                    "files:\n  - {src: 'out/{arch}', dest: /opt/tests}\n"
                    "  - {src: ., dest: /opt/all}\n"
                    "sysctl: {vm.overcommit_memory: 1, kernel.printk: '7 4 1 7'}\n"
                    "steps: [{run: 'true'}]\n")
    s = scenario.load(path)
    assert set(s.files) == {GuestFile(tmp_path / "out" / "aarch64", "/opt/tests", "aarch64"),
                            GuestFile(tmp_path / "out" / "x86_64", "/opt/tests", "x86_64"),
                            GuestFile(tmp_path, "/opt/all", "")}
    assert s.sysctls == (("vm.overcommit_memory", "1"), ("kernel.printk", "7 4 1 7"))


def test_a_put_source_may_name_the_cells_arch(tmp_path):
    for arch in ("aarch64", "x86_64"):
        (tmp_path / f"tool-{arch}").write_bytes(arch.encode())
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmatrix: {arch: [aarch64, x86_64], kernel: [nokpti]}\n"
                    "steps: [{put: {src: 'tool-{arch}', dest: /bin/tool}}]\n")
    put = scenario.load(path).steps[0]
    assert dict(put.src) == {a: tmp_path / f"tool-{a}" for a in ("aarch64", "x86_64")}
