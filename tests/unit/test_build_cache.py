"""lab.build.cache: the one protocol for a cache entry, locks, the JSON write."""

from __future__ import annotations

import json
import threading

import pytest

from lab.build import cache
from lab.errors import InfraError


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
