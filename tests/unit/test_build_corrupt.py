"""A corrupt build cache, against the fake kernel tree: every artifact is
recorded when built and checked on use; a corrupt entry is rebuilt (and
said), or refused in one line when it cannot be; entries a lab before
manifests wrote are adopted, not rebuilt."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lab.arches import ARCHES
from lab.artifacts import build, kconfig, kernel
from lab.core.errors import InfraError
from lab.host import cache
from tests.fake.kernel import FakeLab, make_fake_lab
from tests.unit.inprocess import lab

A64 = ARCHES["aarch64"]


@pytest.fixture
def unbuilt(tmp_path, monkeypatch) -> FakeLab:
    """A fake lab whose cache holds nothing built yet."""
    yield make_fake_lab(tmp_path, monkeypatch)
    kernel.compiler_id.cache_clear()


def ensure(fake: FakeLab, said: list | None = None, spec: str = "kpti"):
    """build.ensure_kernel on the fake tree; said collects (phase, detail)."""
    progress = (lambda phase, detail: said.append((phase, detail))) if said is not None \
        else build.quiet
    return build.ensure_kernel(A64, kconfig.resolve_variant(A64, spec), source=fake.src,
                               progress=progress)


def let_go(place: Path) -> None:
    """Drop this process's holds (lab.host.cache.hold) on entries under place, as the
    end of the lab process that took them would: place's cache is about to be replaced."""
    with cache._held_lock:
        for lock in [lock for lock in cache._held if place in lock.parents]:
            cache._held.pop(lock).close()


@pytest.fixture(scope="module")
def built_once(tmp_path_factory) -> tuple[Path, Path]:
    """A fake lab in which aarch64/kpti was ensured once (the kernel, its initramfs, the
    guest tools, busybox), and a copy of its cache as that build left it."""
    place = tmp_path_factory.mktemp("fake-lab")
    with pytest.MonkeyPatch.context() as mp:
        ensure(make_fake_lab(place, mp))
    kernel.compiler_id.cache_clear()
    let_go(place)
    saved = tmp_path_factory.mktemp("built-cache") / "cache"
    shutil.copytree(place / "cache", saved, symlinks=True)
    return place, saved


@pytest.fixture
def fake(built_once, monkeypatch) -> FakeLab:
    """A fake lab whose aarch64/kpti kernel is built: the module's lab made again in the
    same place (the cache records absolute paths), with the built cache copied back, so
    that each test damages a build of its own without building it first."""
    place, saved = built_once
    shutil.rmtree(place)
    fake = make_fake_lab(place, monkeypatch)
    shutil.rmtree(fake.cache)
    shutil.copytree(saved, fake.cache, symlinks=True)
    yield fake
    kernel.compiler_id.cache_clear()
    let_go(place)


def warnings(said: list) -> list[str]:
    return [detail for phase, detail in said if phase == "warning"]


def truncate(path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def flip_a_byte(path) -> None:
    """One byte changed in the middle; the size and mtime stay."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def forget_manifests(fake: FakeLab) -> None:
    """The cache as a lab before manifests left it."""
    for mfile in fake.cache.rglob("*manifest.json"):
        mfile.unlink()


# ---------------------------------------------------------------- recording

def test_every_artifact_is_recorded_when_it_is_built(unbuilt):
    kb = ensure(unbuilt)
    kdir = kb.image.parent
    files = json.loads((kdir / "manifest.json").read_text())["files"]
    assert sorted(files) == ["Image", "config", "meta.json"]
    assert files["Image"] == {"size": kb.image.stat().st_size,
                              "sha256": cache.file_sha(kb.image)}
    side = kb.initramfs.with_name(kb.initramfs.name + ".manifest.json")
    assert json.loads(side.read_text())["files"]["."]["sha256"] == cache.file_sha(kb.initramfs)
    (ext,) = (kdir / "ext").iterdir()
    assert list(json.loads((ext / "manifest.json").read_text())["files"]) == ["pl011_lab.ko"]
    (tools,) = (unbuilt.cache / "tools").iterdir()
    recorded = json.loads((tools / "manifest.json").read_text())["files"]
    assert {"abi-armv7", "abi-aarch64"} <= set(recorded)
    (bb,) = (unbuilt.cache / "busybox").iterdir()
    assert list(json.loads((bb / "manifest.json").read_text())["files"]) == ["bin/busybox"]


def test_an_intact_cache_is_used_without_a_word(fake):
    first = ensure(fake)
    said: list = []
    assert ensure(fake, said) == first and said == []


# ---------------------------------------------------------------- rebuilt

def test_a_truncated_image_is_rebuilt_said_and_the_rebuilt_one_is_used(fake):
    first = ensure(fake)
    whole = first.image.read_bytes()
    truncate(first.image, 20)
    said: list = []
    again = ensure(fake, said)
    assert warnings(said) == [f"corrupt cache entry, rebuilding it: {first.image}: "
                              f"truncated: 20 bytes of {len(whole)}"]
    assert ("done", "aarch64/kpti") in said                   # built again
    assert again.image == first.image and again.image.read_bytes() == whole
    assert build.verify_kernel(again.image.parent) is None
    assert again.initramfs.exists() and fake.entries() == [first.image.parent.name]


@pytest.mark.parametrize("damage", [lambda p: truncate(p, 1000), flip_a_byte, os.remove])
def test_a_damaged_or_missing_initramfs_is_rebuilt(fake, damage):
    first = ensure(fake)
    whole = first.initramfs.read_bytes()
    damage(first.initramfs)
    said: list = []
    again = ensure(fake, said)
    assert again.initramfs == first.initramfs and again.initramfs.read_bytes() == whole
    assert ("initramfs", first.initramfs.name) in said
    if damage is not os.remove:                               # a missing one is just built
        assert warnings(said)[0].startswith(f"corrupt cache entry, rebuilding it: "
                                            f"{first.initramfs}: ")
    assert not any(phase == "compile" for phase, _ in said)   # the kernel was kept


@pytest.mark.parametrize("garbage", [
    os.urandom(200), b"[]", b"{}", b'{"arch": "aarch64", "kernel": "kpti", "ha',
    b'{"arch": 1, "kernel": "kpti", "hash": "x", "image": "Image", "release": "6"}',
    b"[" * 100_000,
    b'{"arch": "aarch64", "kernel": "kpti", "hash": "H", "image": "Image", "release": "6", '
    b'"source": "s", "options": {}, "image_path": "../../../../etc/passwd"}'],
    ids=["random", "list", "empty", "cut", "types", "deep", "escaping-image-path"])
def test_a_garbage_meta_json_is_rebuilt_without_a_traceback(fake, garbage):
    """Without a manifest (as a lab before manifests left it), so that the
    check of meta.json's own content is what finds it."""
    first = ensure(fake)
    forget_manifests(fake)
    meta = first.image.parent / "meta.json"
    good = json.loads(meta.read_text())
    meta.write_bytes(garbage)
    said: list = []
    again = ensure(fake, said)
    assert warnings(said)[0].startswith(f"corrupt cache entry, rebuilding it: {meta}: ")
    assert again == first and json.loads(meta.read_text())["hash"] == good["hash"]


def test_a_meta_json_changed_into_other_valid_json_is_rebuilt(fake):
    first = ensure(fake)
    meta = first.image.parent / "meta.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "release": "6.1.0-FAKE"}, indent=2) + "\n")
    said: list = []
    assert ensure(fake, said).release == "6.1.0-fake"
    assert warnings(said) == [f"corrupt cache entry, rebuilding it: {meta}: "
                              "its bytes changed since it was built (sha256 differs)"]


@pytest.mark.parametrize("name", ["Image", "config", "meta.json", "manifest.json"])
def test_a_missing_artifact_is_rebuilt(fake, name):
    first = ensure(fake)
    (first.image.parent / name).unlink()
    said: list = []
    again = ensure(fake, said)
    assert again == first and (first.image.parent / name).exists()
    if name in ("Image", "config"):
        assert warnings(said) == [f"corrupt cache entry, rebuilding it: "
                                  f"{first.image.parent / name}: missing"]
    elif name == "manifest.json":                             # adopted, not rebuilt
        assert said == []
    else:                                                      # no marker: not finished
        assert ("done", "aarch64/kpti") in said


def test_a_flipped_byte_in_a_guest_tool_busybox_or_module_is_rebuilt(fake):
    first = ensure(fake)
    (tools,) = (fake.cache / "tools").iterdir()
    (bb,) = (fake.cache / "busybox").iterdir()
    (ext,) = (first.image.parent / "ext").iterdir()
    damaged = [tools / "abi-armv7", bb / "bin" / "busybox", ext / "pl011_lab.ko"]
    whole = [path.read_bytes() for path in damaged]
    for path in damaged:
        flip_a_byte(path)
    first.initramfs.unlink()                                  # so the modules are used
    said: list = []
    again = ensure(fake, said)
    assert [w.split(": ")[1] for w in warnings(said)] == [str(p) for p in damaged]
    assert [path.read_bytes() for path in damaged] == whole
    for data in whole:
        assert data in again.initramfs.read_bytes()


# ---------------------------------------------------------------- adopted

def test_a_cache_without_manifests_is_adopted_without_a_rebuild(fake):
    first = ensure(fake)
    forget_manifests(fake)
    log = first.image.parent / "build.log"
    stamp = log.stat().st_mtime_ns
    said: list = []
    assert ensure(fake, said) == first and said == []
    assert log.stat().st_mtime_ns == stamp
    assert (first.image.parent / "manifest.json").exists()
    assert first.initramfs.with_name(first.initramfs.name + ".manifest.json").exists()
    flip_a_byte(first.image)                                  # from now on, checked
    with pytest.raises(cache.CorruptEntry, match="sha256 differs"):
        build.verify_kernel(first.image.parent)


def test_a_truncated_image_or_initramfs_is_found_even_without_a_manifest(fake):
    first = ensure(fake)
    forget_manifests(fake)
    whole = first.initramfs.read_bytes()
    truncate(first.image, 30)               # the build tree's copy says how long it was
    said: list = []
    again = ensure(fake, said)
    assert [w.split(": ")[1] for w in warnings(said)] == [str(first.image)]
    assert again.image.read_bytes() == (first.build_dir / A64.image_path).read_bytes()
    forget_manifests(fake)
    truncate(again.initramfs, 2000)         # the cpio trailer is gone
    said.clear()
    assert ensure(fake, said).initramfs.read_bytes() == whole
    assert warnings(said) == [f"corrupt cache entry, rebuilding it: {first.initramfs}: "
                              "not a whole newc cpio archive (truncated?)"]


# ---------------------------------------------------------------- refused

def test_a_corrupt_initramfs_that_cannot_be_rebuilt_is_one_clear_line(fake):
    first = ensure(fake)
    truncate(first.initramfs, 100)
    cache.remove(first.build_dir)                             # modules_install needs it
    with pytest.raises(InfraError) as err:
        ensure(fake)
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith(f"{first.initramfs}: truncated: 100 bytes of ")
    assert f"rebuilding it failed: {first.build_dir}: the build tree of kernel aarch64/kpti " \
           "is gone" in text


def test_lab_build_says_it_rebuilds_and_exits_0(fake):
    first = ensure(fake)
    truncate(first.image, 10)
    result = lab("build", "--arch", "aarch64", "--kernel", "kpti", "--kernel-src",
                 str(fake.src), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"lab: warning: aarch64/kpti: corrupt cache entry, rebuilding it: {first.image}: " \
           "truncated: 10 bytes of" in " ".join(result.stderr.split())
    build.verify_kernel(first.image.parent)


def test_lab_build_that_cannot_rebuild_exits_2_in_one_line_naming_the_file(fake):
    first = ensure(fake)
    truncate(first.initramfs, 100)
    cache.remove(first.build_dir)
    result = lab("build", "--arch", "aarch64", "--kernel", "kpti", "--kernel-src",
                 str(fake.src), timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert "Traceback" not in result.stderr and len(errors) == 1
    assert f"lab: error: {first.initramfs}: truncated" in " ".join(result.stderr.split())


# ---------------------------------------------------------------- listing

def test_lab_kernels_on_a_corrupt_cache_lists_the_rest_and_warns(fake):
    kpti, nokpti = ensure(fake), ensure(fake, spec="nokpti")
    (kpti.image.parent / "meta.json").write_bytes(os.urandom(100))
    truncate(nokpti.initramfs, 50)
    found: list = []
    assert build.list_kernels(found.append) == [
        kernel._from_meta(nokpti.image.parent)]                # no intact initramfs left
    assert sorted(str(bad.file) for bad in found) == sorted(
        [str(kpti.image.parent / "meta.json"), str(nokpti.initramfs)])
    for args in (("kernels",), ("kernels", "--json")):
        result = lab(*args, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.count("lab: warning: corrupt, not listed") == 2
    listed = json.loads(lab("kernels", "--json", timeout=60).stdout)
    assert [k["kernel"] for k in listed] == ["nokpti"] and listed[0]["initramfs"] is None
