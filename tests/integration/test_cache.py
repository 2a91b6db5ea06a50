"""A corrupt copy of a real cached kernel: found before anything boots.

The copy lives in a temporary LAB_CACHE; the real cache is only read. No
kernel is built: the copy's kernel source is an extracted tree that cannot
build (as if the source were gone), so `lab exec` must refuse at once, naming
the truncated Image, instead of booting it and waiting out the boot deadline.
"""

from __future__ import annotations

import shutil
import time

import pytest

from lab.arches import ARCHES
from lab.artifacts import build, kconfig, kernel
from lab.core.errors import LabError
from tests.conftest import lab, lab_qemus

pytestmark = pytest.mark.qemu

ARCH = ARCHES["aarch64"]


@pytest.fixture
def real_entry():
    """The real default aarch64/nokpti kernel entry, from ~/.cache/lab."""
    try:
        _, source_id = build.kernel_source()
        key = build.kernel_key(ARCH, kconfig.resolve_variant(ARCH, "nokpti"), source_id)
    except LabError as exc:
        pytest.skip(f"no kernel source: {exc}")
    kdir = kernel.kernels_dir() / f"{ARCH.name}-nokpti-{key[:12]}"
    if not (kdir / "meta.json").exists():
        pytest.skip(f"{kdir}: the real aarch64/nokpti kernel is not cached")
    return kdir, source_id


def copy_entry(kdir, source_id, cache):
    """kdir's image, config, meta.json, newest initramfs and the build tree's
    image (not the rest of its 100 MB tree) under cache; a source tree that
    cannot build; the tarball's known id, so that nothing is hashed again."""
    copy = cache / "kernels" / kdir.name
    (copy / "obj" / ARCH.image_path).parent.mkdir(parents=True)
    for name in ("Image", "config", "meta.json", f"obj/{ARCH.image_path}"):
        shutil.copy2(kdir / name, copy / name)
    newest = max(kdir.glob("initramfs-*.cpio"), key=lambda p: p.stat().st_mtime)
    shutil.copy2(newest, copy / newest.name)
    src = cache / "src" / f"linux-{source_id[:12]}"
    src.mkdir(parents=True)
    (src / ".lab-extracted").write_text(source_id + "\n")
    shutil.copy2(kdir.parent.parent / "src" / "ids.json", cache / "src" / "ids.json")
    return copy


def test_a_truncated_real_image_is_refused_in_seconds_not_booted(real_entry, tmp_path,
                                                                  monkeypatch):
    kdir, source_id = real_entry
    cache = tmp_path / "cache"
    copy = copy_entry(kdir, source_id, cache)
    size = (copy / "Image").stat().st_size
    with open(copy / "Image", "r+b") as fh:
        fh.truncate(size // 2)

    monkeypatch.setenv("LAB_CACHE", str(cache))
    started = time.monotonic()
    with pytest.raises(build.CorruptEntry) as err:       # the build layer's check
        build.verify_kernel(copy)
    assert time.monotonic() - started < 1.0
    assert str(err.value).startswith(f"{copy / 'Image'}: truncated: {size // 2} bytes")

    started = time.monotonic()
    result = lab("exec", "--arch", "aarch64", "--kernel", "nokpti", "--", "true",
                 env={"LAB_CACHE": str(cache)}, timeout=120)
    took = time.monotonic() - started
    stderr = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert took < 30, f"{took:.1f} s"                    # the boot deadline is minutes
    assert "Traceback" not in stderr
    assert f"corrupt cache entry, rebuilding it: {copy / 'Image'}: truncated" in stderr
    assert f"lab: error: {copy / 'Image'}: truncated: {size // 2} bytes" in stderr
    assert "rebuilding it failed: configure failed" in stderr
    assert not lab_qemus()
    assert (kdir / "Image").stat().st_size == size       # the real cache is untouched
