"""The build cache: its layout, its locks, and the one protocol for an entry.

Layout (~/.cache/lab, or $LAB_CACHE):

    src/linux-<id>/                         extracted kernel source (+ ids.json)
    kernels/<arch>-<variant>-<hash>/        one kernel build
        obj/                                the O= tree (kept for M= module builds)
        Image | vmlinux, config, build.log, meta.json, manifest.json
        initramfs-<hash>.cpio               guest images for this kernel
        initramfs-<hash>.cpio.manifest.json
        ext/<module>-<hash>/                out-of-tree modules built against it
    tools/<arch>-<hash>/                    static guest tools (+ manifest.json)
    busybox/<deb>/                          busybox-static, unpacked (+ manifest.json)
    debs/                                   busybox-static, bash-static for each arch
    logs/<date>-<command>-<pid>/            the logs of lab exec and lab shell guests
    locks/                                  flock files; locks/use/: who uses what (hold)

Every entry is made by `entry()`: look for its marker; take the entry's lock;
look again; build into a scratch place beside it; write the marker, then the
manifest, last; rename the scratch place into place. So an entry is either
finished or absent, never half-written, whatever kills the build.

The manifest records each artifact's size and sha256 when the entry is built:
manifest.json inside a directory entry, <name>.manifest.json beside a file
entry. Each use checks every recorded artifact against it, hashes included:
sha256 runs at about 1.3 GB/s here (30 MB: 22 ms with the file in the page
cache, 28-46 ms without; bench/cache.py), so there is no need for a cheaper
size-and-mtime stamp, which would miss a flipped byte. An entry that fails the
check (an artifact missing,
truncated or changed; a manifest or metadata that is not what the lab wrote)
is corrupt: entry() says so through progress, removes it under its lock and
builds it again. An entry finished by a lab that wrote no manifests is
adopted: its manifest is written on first use from what is there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from lab.core.deadline import Deadline
from lab.core.errors import InfraError, LabError
from lab.core.paths import cache_dir
from lab.host.command import WARNING, Progress, quiet

#: Bump when the build recipe changes, so old cache entries are not reused.
RECIPE = 1
#: Prefix of an entry's scratch place: it is never an entry (list_kernels and
#: the seeding search skip it), and the next attempt clears it.
PARTIAL = ".partial-"
#: How long to wait for another lab process that holds an entry's lock: longer
#: than the longest build (the kernel compile's deadline) plus its configure.
LOCK_WAIT_S = 2 * 3600.0
_LOCK_POLL_S = 0.2
#: A finished entry's record of its artifacts (see the module's docstring).
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
#: Metadata (meta.json, manifests) is small; a bigger file is not the lab's.
JSON_LIMIT = 1 << 20

#: record(root) -> the artifacts of the entry at root, to record and check.
Record = Callable[[Path], Iterable[Path]]
#: check(root) raises CorruptEntry if the entry at root is not what was built:
#: a cheap look at its structure (its metadata, a file's format).
Check = Callable[[Path], None]


class CorruptEntry(InfraError):
    """A cache entry's file is not what the lab built. entry() rebuilds the
    entry; this error reaches the user only if it cannot."""

    def __init__(self, file: Path, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


def sha(*parts: bytes | str) -> str:
    """sha256 over parts, each terminated, so ("ab", "c") != ("a", "bc")."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def file_sha(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


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


#: Use locks: a shared flock per cache entry a process uses, held until it exits.
_held: dict[Path, Any] = {}
_held_lock = threading.Lock()


def use_lock(entry: Path) -> Path:
    """The file whose flock says that a process uses entry (see hold)."""
    rel = entry.resolve().relative_to(cache_dir().resolve())
    return cache_dir() / "locks" / "use" / (urllib.parse.quote(str(rel), safe="") + ".lock")


def hold(entry: Path, wait: float = LOCK_WAIT_S) -> None:
    """Mark entry (or anything under the cache) as used by this process until it
    exits: a shared flock, which gc's exclusive one cannot take while it is held.
    The lock file's mtime is the entry's last use. A path outside the cache is
    not the cache's to hold."""
    try:
        lock = use_lock(entry)
    except ValueError:
        return
    with _held_lock:
        if lock in _held:
            os.utime(lock)
            return
        lock.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock, "a")
        deadline = Deadline(wait)
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:     # gc is removing it this moment: wait, then rebuild
                if deadline.expired():
                    fh.close()
                    raise InfraError(f"{lock}: held by a cache gc for over {wait:g} s") from None
                time.sleep(_LOCK_POLL_S)
        os.utime(lock)
        _held[lock] = fh


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


# ---------------------------------------------------------------- manifests

def itself(root: Path) -> list[Path]:
    """The Record of a file entry: the file is its one artifact."""
    return [root]


def manifest_path(path: Path) -> Path:
    """Where the manifest of the entry at path is: inside a directory, beside a file."""
    return path / MANIFEST if path.is_dir() else path.with_name(f"{path.name}.{MANIFEST}")


def unreadable(path: Path, exc: OSError) -> CorruptEntry:
    """The CorruptEntry for an artifact that could not be read."""
    if isinstance(exc, FileNotFoundError):
        return CorruptEntry(path, "missing")
    return CorruptEntry(path, f"unreadable ({exc.strerror or exc})")


def load_json(path: Path) -> dict:
    """A small JSON object the lab wrote; CorruptEntry if path is not one
    (missing, unreadable, too big, not UTF-8, not JSON, not an object)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(JSON_LIMIT + 1)
    except OSError as exc:
        raise unreadable(path, exc) from None
    if len(data) > JSON_LIMIT:
        raise CorruptEntry(path, f"over {JSON_LIMIT} bytes, so not the lab's metadata")
    try:
        value = json.loads(data.decode())
    except (ValueError, RecursionError):
        raise CorruptEntry(path, "not JSON (garbage or cut short)") from None
    if not isinstance(value, dict):
        raise CorruptEntry(path, f"not a JSON object (a {type(value).__name__})")
    return value


def require(path: Path, data: dict, fields: dict[str, type]) -> None:
    """CorruptEntry unless data (read from path) has each field, of its type."""
    for key, kind in fields.items():
        value = data.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            what = "no" if key not in data else "a bad"
            raise CorruptEntry(path, f"{what} {key!r} (want a {kind.__name__})")


def _stamp(path: Path) -> dict:
    try:
        return {"size": path.stat().st_size, "sha256": file_sha(path)}
    except OSError as exc:
        raise unreadable(path, exc) from None


def _write_manifest(root: Path, target: Path, record: Record) -> None:
    files = {str(p.relative_to(root)): _stamp(p) for p in record(root)}
    write_json(target, {"version": MANIFEST_VERSION, "files": files})


def _recorded(mfile: Path) -> dict[str, dict]:
    """The manifest's files, each checked for shape; CorruptEntry if it is not one."""
    data = load_json(mfile)
    require(mfile, data, {"version": int, "files": dict})
    for name, stamp in data["files"].items():
        if Path(name).is_absolute() or ".." in Path(name).parts or not isinstance(stamp, dict):
            raise CorruptEntry(mfile, f"a bad entry {name!r}")
        require(mfile, stamp, {"size": int, "sha256": str})
    return data["files"]


def _check_file(path: Path, stamp: dict) -> None:
    """The size first (it names a truncation), then every byte's sha256."""
    try:
        size = path.stat().st_size
        if size < stamp["size"]:
            raise CorruptEntry(path, f"truncated: {size} bytes of {stamp['size']}")
        if size != stamp["size"]:
            raise CorruptEntry(path, f"{size} bytes, but {stamp['size']} were built")
        if file_sha(path) != stamp["sha256"]:
            raise CorruptEntry(path, "its bytes changed since it was built (sha256 differs)")
    except OSError as exc:
        raise unreadable(path, exc) from None


def verify(path: Path, record: Record | None = None, check: Check | None = None) -> bool:
    """Check a finished entry; raise CorruptEntry if it is not what was built.

    True if every artifact matches the manifest (or nothing is recorded);
    False if the entry has no manifest yet (a lab before manifests built it:
    see adopt). check, if given, runs after the manifest either way.
    """
    mfile = manifest_path(path)
    recorded = record is not None and mfile.exists()
    if recorded:
        for name, stamp in _recorded(mfile).items():
            _check_file(path / name, stamp)
    if check is not None:
        check(path)
    return recorded or record is None


def adopt(path: Path, record: Record) -> None:
    """Write the manifest of a finished entry that has none, from what is
    there now: a one-time hash, so that the next use can check it."""
    _write_manifest(path, manifest_path(path), record)


def discard(path: Path) -> None:
    """A corrupt or stale entry, and its manifest beside it if it is a file."""
    remove(path.with_name(f"{path.name}.{MANIFEST}"))
    remove(path)


# ---------------------------------------------------------------- entries

def _usable(path: Path, marker: str | None, record: Record | None, check: Check | None,
            progress: Progress) -> tuple[bool, CorruptEntry | None]:
    """Under the entry's lock: (usable, why not). A finished entry without a
    manifest is adopted; a corrupt one is reported and removed."""
    if not _finished(path, marker):
        return False, None
    try:
        if not verify(path, record, check) and record is not None:
            adopt(path, record)
        return True, None
    except CorruptEntry as bad:
        progress(WARNING, f"corrupt cache entry, rebuilding it: {bad}")
        discard(path)
        return False, bad


def _intact(path: Path, marker: str | None, record: Record | None,
            check: Check | None) -> bool:
    """Without the lock: finished, with a manifest, and matching it."""
    try:
        return _finished(path, marker) and verify(path, record, check)
    except CorruptEntry:
        return False


def _rebuild_failed(bad: CorruptEntry, exc: LabError) -> None:
    """Make a failed rebuild's error name the corrupt file first (its type,
    log and tail stay)."""
    first = exc.args[0] if exc.args else type(exc).__name__
    exc.args = (f"{bad}; rebuilding it failed: {first}", *exc.args[1:])


def _build_into(path: Path, build: Callable[[Path], Any], marker: str | None,
                record: Record | None) -> None:
    """build(scratch), then the marker, then the manifest; then scratch onto path."""
    scratch = path.parent / f"{PARTIAL}{path.name}"
    remove(scratch)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        made = build(scratch)
        if marker is not None:
            _write_marker(scratch / marker, made)
        if record is not None:
            target = scratch / MANIFEST if scratch.is_dir() else manifest_path(path)
            _write_manifest(scratch, target, record)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            remove(scratch)
        raise
    place(scratch, path)


def place(scratch: Path, path: Path) -> None:
    """A finished entry, built aside in scratch, put at path: whatever was there
    (an older lab's half-built entry, a stale one) goes first, then the rename."""
    remove(path)
    os.replace(scratch, path)


def entry(path: Path, build: Callable[[Path], Any], *, marker: str | None = None,
          lock: str | None = None, wait: Deadline | float = LOCK_WAIT_S,
          record: Record | None = None, check: Check | None = None,
          progress: Progress = quiet) -> Path:
    """The finished, intact cache entry at path, built now by build(scratch)
    if it is missing or corrupt.

    build gets a scratch path that does not exist yet and makes it: a
    directory, or a file. With marker, the entry is a directory that counts
    only once path/marker exists: entry() writes it last, from what build
    returned (a dict as JSON, a string as text, None as an empty file).
    Without, the entry counts once path exists. Either way the finished
    scratch is renamed onto path, so readers never see a half-written entry.

    record names the artifacts whose sizes and sha256 the manifest keeps
    (cache.itself for a file entry); check is a cheap look at the entry's
    structure. Both run on every use (see verify); a corrupt entry is said
    through progress (phase WARNING), removed and built again. If that
    rebuild fails, its error names the corrupt file.

    If build raises an error, the scratch place stays (at .partial-<name>, never
    an entry) so that its logs can be read, until the next attempt clears it.
    If it is interrupted (Ctrl-C, SystemExit), nothing of it stays.
    """
    hold(path)
    if _intact(path, marker, record, check):
        return path
    with locked(lock or path.name, wait):
        usable, bad = _usable(path, marker, record, check, progress)
        if usable:
            return path
        try:
            _build_into(path, build, marker, record)
        except LabError as exc:
            if bad is not None:
                _rebuild_failed(bad, exc)
            raise
    return path


def read_json(path: Path) -> dict:
    """A JSON object, or {} if the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _finite(data: Any) -> Any:
    """data with every NaN or infinity as None: JSON has no such numbers, and a
    file with them is not JSON that other tools read (a ratio against a baseline
    whose median is 0 is infinite; the row's sentence says so in words)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def dumps(data: Any) -> str:
    """The lab's JSON text: indented, and strict (see _finite)."""
    return json.dumps(_finite(data), indent=2, allow_nan=False)


def write_json(path: Path, data: dict) -> None:
    """Atomic: a unique temporary file beside path, then os.replace. Strict JSON."""
    write_text(path, dumps(data) + "\n")


def write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Atomic: a unique temporary file beside path (mode: its permissions, else
    mkstemp's 0600), then os.replace, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
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
