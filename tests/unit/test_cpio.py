"""The initramfs writer produces archives that cpio(1) and the kernel read."""

import subprocess

from lab.artifacts.build import Cpio


def test_cpio_archive_lists_and_extracts_with_gnu_cpio(tmp_path):
    archive = Cpio()
    archive.dir("bin")
    archive.file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
    archive.symlink("bin/sh", "busybox")
    archive.chardev("dev/console", 5, 1)
    archive.file("odd-size", b"x" * 5)
    (tmp_path / "a.cpio").write_bytes(archive.finish())
    listing = subprocess.run(["cpio", "-itv", "-F", str(tmp_path / "a.cpio")],
                             capture_output=True, text=True, check=True).stdout
    lines = listing.splitlines()
    assert [line.split()[-1] for line in lines] == ["bin", "bin/tool", "busybox", "dev/console",
                                                   "odd-size"]
    assert lines[1].startswith("-rwxr-xr-x")
    assert lines[2].startswith("lrwxrwxrwx") and "bin/sh -> busybox" in lines[2]
    assert lines[3].startswith("crw-------") and "5,   1" in lines[3]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--no-absolute-filenames", "-F", str(tmp_path / "a.cpio")],
                   cwd=out, check=True, capture_output=True,
                   input=b"")
    assert (out / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "odd-size").read_bytes() == b"xxxxx"
