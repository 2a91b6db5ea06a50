"""The build cache: its layout, its locks, and the one protocol for an entry.

Layout (~/.cache/lab, or $LAB_CACHE):

    src/linux-<id>/                         extracted kernel source (+ ids.json)
    kernels/<arch>-<variant>-<hash>/        one kernel build
        obj/                                the O= tree (kept for M= module builds)
        Image | vmlinux, config, build.log, meta.json
        initramfs-<hash>.cpio               guest images for this kernel
        ext/<module>-<hash>/                out-of-tree modules built against it
    tools/<arch>-<hash>/                    static guest tools
    busybox/<deb>/                          busybox-static, unpacked
    debs/                                   busybox-static for each arch
    locks/                                  flock files

Every entry is made by `entry()`: look for its marker; take the entry's lock;
look again; build into a scratch place beside it; write the marker last; rename
the scratch place into place. So an entry is either finished or absent, never
half-written, whatever kills the build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lab.deadline import Deadline
from lab.errors import InfraError
from lab.paths import cache_dir

#: Bump when the build recipe changes, so old cache entries are not reused.
RECIPE = 1
#: Prefix of an entry's scratch place: it is never an entry (list_kernels and
#: the seeding search skip it), and the next attempt clears it.
PARTIAL = ".partial-"
#: How long to wait for another lab process that holds an entry's lock: longer
#: than the longest build (the kernel compile's deadline) plus its configure.
LOCK_WAIT_S = 2 * 3600.0
_LOCK_POLL_S = 0.2


def sha(*parts: bytes | str) -> str:
    """sha256 over parts, each terminated, so ("ab", "c") != ("a", "bc")."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def tree_hash(root: Path) -> str:
    """Hash of every file under root: relative names, modes and contents."""
    parts: list[bytes | str] = []
    if root.exists():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            parts += [str(path.relative_to(root)), oct(path.stat().st_mode & 0o111),
                      path.read_bytes()]
    return sha(*parts)


@contextlib.contextmanager
def locked(name: str, wait: Deadline | float = LOCK_WAIT_S) -> Iterator[None]:
    """An exclusive flock under cache_dir()/locks, so concurrent lab processes
    never build the same entry twice; waiting for it is bounded too."""
    deadline = Deadline(wait) if isinstance(wait, (int, float)) else wait
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline.expired():
                    raise InfraError(
                        f"{locks / name}.lock: another lab process held it for more than "
                        f"{deadline.seconds:g} s") from None
                time.sleep(min(_LOCK_POLL_S, deadline.remaining()))
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove(path: Path) -> None:
    """A file, a symlink or a whole tree; nothing if absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _finished(path: Path, marker: str | None) -> bool:
    return (path / marker if marker else path).exists()


def _write_marker(path: Path, content: Any) -> None:
    if isinstance(content, dict):
        content = json.dumps(content, indent=2) + "\n"
    path.write_text("" if content is None else str(content))


def entry(path: Path, build: Callable[[Path], Any], *, marker: str | None = None,
          lock: str | None = None, wait: Deadline | float = LOCK_WAIT_S) -> Path:
    """The finished cache entry at path, built now by build(scratch) if missing.

    build gets a scratch path that does not exist yet and makes it: a
    directory, or a file. With marker, the entry is a directory that counts
    only once path/marker exists: entry() writes it last, from what build
    returned (a dict as JSON, a string as text, None as an empty file).
    Without, the entry counts once path exists. Either way the finished
    scratch is renamed onto path, so readers never see a half-written entry.

    If build raises an error, the scratch place stays (at .partial-<name>, never
    an entry) so that its logs can be read, until the next attempt clears it.
    If it is interrupted (Ctrl-C, SystemExit), nothing of it stays.
    """
    if _finished(path, marker):
        return path
    with locked(lock or path.name, wait):
        if _finished(path, marker):
            return path
        scratch = path.parent / f"{PARTIAL}{path.name}"
        remove(scratch)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            made = build(scratch)
            if marker is not None:
                _write_marker(scratch / marker, made)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                remove(scratch)
            raise
        remove(path)              # what an older lab left half-built (no marker)
        os.replace(scratch, path)
    return path


def read_json(path: Path) -> dict:
    """A JSON object, or {} if the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict) -> None:
    """Atomic: a unique temporary file beside path, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_json(path: Path, change: Callable[[dict], dict]) -> dict:
    """Read, change and write a JSON file under its lock, so that two lab
    processes updating it at once both keep their change."""
    with locked(f"json-{sha(str(path.resolve()))[:12]}"):
        data = change(read_json(path))
        write_json(path, data)
    return data


@contextlib.contextmanager
def workdir(path: Path) -> Iterator[Path]:
    """A scratch directory for the length of one build step, never an entry
    (name it with PARTIAL): removed after success or an interrupt, kept after
    an error so that its logs can be read, until the next attempt clears it."""
    remove(path)
    path.mkdir(parents=True)
    try:
        yield path
    except Exception:
        raise
    except BaseException:
        remove(path)
        raise
    remove(path)
