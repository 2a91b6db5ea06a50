"""lab.host.cache: the one protocol for a cache entry, locks, the JSON write,
and the manifests that find a corrupt entry."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import pytest

from lab.core.errors import BuildError, InfraError
from lab.host import cache


@pytest.fixture(autouse=True)
def lab_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_an_entry_is_built_once_and_its_marker_is_written_last(tmp_path):
    path = tmp_path / "entries" / "thing"
    calls = []

    def make(scratch):
        calls.append(scratch)
        assert scratch.name == ".partial-thing" and not scratch.exists()
        scratch.mkdir()
        (scratch / "data").write_text("x")
        return {"done": True}

    assert cache.entry(path, make, marker="meta.json") == path
    assert json.loads((path / "meta.json").read_text()) == {"done": True}
    assert (path / "data").read_text() == "x"
    assert cache.entry(path, make, marker="meta.json") == path
    assert len(calls) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["thing"]


def test_a_file_entry_appears_whole(tmp_path):
    path = tmp_path / "image.cpio"
    cache.entry(path, lambda scratch: scratch.write_bytes(b"cpio"))
    assert path.read_bytes() == b"cpio"
    cache.entry(path, lambda scratch: pytest.fail("built twice"))


def test_a_failed_build_leaves_no_entry_but_its_scratch_for_reading(tmp_path):
    path = tmp_path / "thing"

    def fail(scratch):
        scratch.mkdir()
        (scratch / "build.log").write_text("error: boom\n")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.entry(path, fail, marker=".done")
    assert not path.exists()
    assert (tmp_path / ".partial-thing" / "build.log").read_text() == "error: boom\n"
    cache.entry(path, lambda scratch: scratch.mkdir(), marker=".done")
    assert (path / ".done").exists() and not (tmp_path / ".partial-thing").exists()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_build_leaves_nothing(tmp_path, interrupt):
    path = tmp_path / "thing"

    def stop(scratch):
        scratch.mkdir()
        (scratch / "half").write_text("")
        raise interrupt()

    with pytest.raises(interrupt):
        cache.entry(path, stop, marker=".done")
    assert list(tmp_path.iterdir()) == [tmp_path / "cache"]     # only the locks


def test_what_an_older_lab_left_half_built_is_replaced(tmp_path):
    path = tmp_path / "thing"
    path.mkdir()
    (path / "stale").write_text("")
    cache.entry(path, lambda scratch: scratch.mkdir(), marker="meta.json")
    assert sorted(p.name for p in path.iterdir()) == ["meta.json"]


def test_waiting_for_a_lock_is_bounded():
    held = "another lab process held it for more than 0.3 s"
    with cache.locked("busy"), pytest.raises(InfraError, match=held), \
            cache.locked("busy", wait=0.3):
        pass
    with cache.locked("busy", wait=0.3):
        pass


def test_update_json_keeps_every_concurrent_change(tmp_path):
    path = tmp_path / "ids.json"

    def add(n: int) -> None:
        for i in range(10):
            cache.update_json(path, lambda data, key=f"{n}-{i}": {**data, key: 0})

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(json.loads(path.read_text())) == 40
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_read_json_of_nothing_or_garbage_is_empty(tmp_path):
    assert cache.read_json(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert cache.read_json(tmp_path / "bad.json") == {}


def test_workdir_is_kept_after_an_error_and_removed_otherwise(tmp_path):
    work = tmp_path / ".partial-stage"
    with pytest.raises(ValueError), cache.workdir(work):
        raise ValueError
    assert work.is_dir()
    with cache.workdir(work):
        pass
    assert not work.exists()
    with pytest.raises(KeyboardInterrupt), cache.workdir(work):
        raise KeyboardInterrupt
    assert not work.exists()


# ---------------------------------------------------------------- manifests

def _files(root):
    return sorted(p for p in root.iterdir() if p.name != cache.MANIFEST)


def _make_dir(calls):
    def make(scratch):
        calls.append(scratch)
        scratch.mkdir()
        (scratch / "a.bin").write_bytes(b"a" * 1000)
        (scratch / "b.bin").write_bytes(b"b" * 10)
    return make


def test_a_directory_entry_records_its_artifacts_last_and_checks_them_on_use(tmp_path):
    path, calls, said = tmp_path / "thing", [], []
    cache.entry(path, _make_dir(calls), marker=".done", record=_files)
    manifest = json.loads((path / cache.MANIFEST).read_text())
    assert manifest["files"] == {
        ".done": {"size": 0, "sha256": hashlib.sha256(b"").hexdigest()},
        "a.bin": {"size": 1000, "sha256": hashlib.sha256(b"a" * 1000).hexdigest()},
        "b.bin": {"size": 10, "sha256": hashlib.sha256(b"b" * 10).hexdigest()}}
    assert cache.verify(path, _files) is True
    (path / "a.bin").write_bytes(b"a" * 999)
    with pytest.raises(cache.CorruptEntry, match=r"a\.bin: truncated: 999 bytes of 1000"):
        cache.verify(path, _files)
    cache.entry(path, _make_dir(calls), marker=".done", record=_files,
                progress=lambda phase, detail: said.append((phase, detail)))
    assert len(calls) == 2 and (path / "a.bin").read_bytes() == b"a" * 1000
    assert said[0] == ("warning", "corrupt cache entry, rebuilding it: "
                                  f"{path / 'a.bin'}: truncated: 999 bytes of 1000")


def test_a_flipped_byte_is_found_even_with_its_size_and_mtime_kept(tmp_path):
    path = tmp_path / "image.cpio"
    cache.entry(path, lambda scratch: scratch.write_bytes(b"x" * 4096), record=cache.itself)
    assert json.loads((tmp_path / "image.cpio.manifest.json").read_text())["files"] == {
        ".": {"size": 4096, "sha256": hashlib.sha256(b"x" * 4096).hexdigest()}}
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(2000)
        fh.write(b"y")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(cache.CorruptEntry, match="sha256 differs"):
        cache.verify(path, cache.itself)
    cache.entry(path, lambda scratch: scratch.write_bytes(b"x" * 4096), record=cache.itself)
    assert path.read_bytes() == b"x" * 4096


@pytest.mark.parametrize("garbage", [
    os.urandom(300), b"", b"[]", b"{}", b'{"version": 1, "files": {"a.bin": {"size": 1',
    b'{"version": 1, "files": []}', b'{"version": "1", "files": {}}',
    b'{"version": 1, "files": {"a.bin": {"size": true, "sha256": "x"}}}',
    b'{"version": 1, "files": {"../../etc/passwd": {"size": 1, "sha256": "x"}}}',
    b"[" * 100_000, b"\xff\xfe\x00garbage"])
def test_a_garbage_manifest_makes_the_entry_corrupt_and_it_is_rebuilt(tmp_path, garbage):
    path, calls = tmp_path / "thing", []
    cache.entry(path, _make_dir(calls), marker=".done", record=_files)
    (path / cache.MANIFEST).write_bytes(garbage)
    with pytest.raises(cache.CorruptEntry, match=f"^{path / cache.MANIFEST}: "):
        cache.verify(path, _files)
    cache.entry(path, _make_dir(calls), marker=".done", record=_files)
    assert len(calls) == 2 and cache.verify(path, _files) is True


def test_an_entry_without_a_manifest_is_adopted_once_without_a_rebuild(tmp_path):
    path, calls = tmp_path / "thing", []
    cache.entry(path, _make_dir(calls), marker=".done")      # as a lab before manifests
    assert not (path / cache.MANIFEST).exists()
    assert cache.verify(path, _files) is False                 # no manifest yet
    cache.entry(path, _make_dir(calls), marker=".done", record=_files)
    assert len(calls) == 1 and cache.verify(path, _files) is True
    (path / "b.bin").unlink()
    with pytest.raises(cache.CorruptEntry, match=r"b\.bin: missing"):
        cache.verify(path, _files)


def test_a_failed_check_makes_the_entry_corrupt(tmp_path):
    path, calls = tmp_path / "thing", []

    def check(root):
        if (root / "b.bin").read_bytes() != b"b" * 10:
            raise cache.CorruptEntry(root / "b.bin", "not b's")

    cache.entry(path, _make_dir(calls), marker=".done", check=check)
    (path / "b.bin").write_bytes(b"c" * 10)
    cache.entry(path, _make_dir(calls), marker=".done", check=check)
    assert len(calls) == 2 and (path / "b.bin").read_bytes() == b"b" * 10


def test_a_rebuild_that_fails_names_the_corrupt_file_and_keeps_its_error(tmp_path):
    path = tmp_path / "image.cpio"
    cache.entry(path, lambda scratch: scratch.write_bytes(b"x" * 100), record=cache.itself)
    path.write_bytes(b"x" * 10)

    def fail(scratch):
        raise BuildError("pack failed (exit code 2): make", "/tmp/log", "boom")

    with pytest.raises(BuildError) as err:
        cache.entry(path, fail, record=cache.itself)
    assert str(err.value).splitlines()[0] == (
        f"{path}: truncated: 10 bytes of 100; rebuilding it failed: "
        "pack failed (exit code 2): make")
    assert err.value.log == "/tmp/log" and err.value.tail == "boom"
    assert not path.exists() and not (tmp_path / "image.cpio.manifest.json").exists()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_rebuild_leaves_neither_entry_nor_manifest(tmp_path, interrupt):
    path = tmp_path / "image.cpio"
    cache.entry(path, lambda scratch: scratch.write_bytes(b"x" * 100), record=cache.itself)
    path.write_bytes(b"")

    def stop(scratch):
        scratch.write_bytes(b"x" * 50)
        raise interrupt()

    with pytest.raises(interrupt):
        cache.entry(path, stop, record=cache.itself)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


@pytest.mark.parametrize("content", [os.urandom(64), b"[]", b"{", b"\x00" * 10, b"[" * 10**5])
def test_load_json_refuses_what_is_not_a_small_object(tmp_path, content):
    (tmp_path / "meta.json").write_bytes(content)
    with pytest.raises(cache.CorruptEntry, match=f"^{tmp_path / 'meta.json'}: not"):
        cache.load_json(tmp_path / "meta.json")


def test_load_json_refuses_a_huge_file_without_reading_it_all(tmp_path):
    (tmp_path / "meta.json").write_bytes(b" " * (cache.JSON_LIMIT + 1))
    with pytest.raises(cache.CorruptEntry, match="over 1048576 bytes"):
        cache.load_json(tmp_path / "meta.json")
