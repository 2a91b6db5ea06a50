"""Snapshot templates: boot once, restore many.

A template is a guest stopped at its shell prompt, set up, and saved: its RAM
in a file (QEMU's memory-backend-file, share=on while the template boots) and
its device state (a migration with x-ignore-shared into `state`, some 300 KB,
through a file descriptor: Machine.save_state). A clone starts QEMU with the
same RAM file share=off (MAP_PRIVATE: a copy-on-write view, so the clone never
writes the file) and `-incoming defer`, loads the state with migrate-incoming,
and runs on from the template's prompt: 0.10-0.12 s to the first command,
against 0.7-1.1 s for a cold boot (issue 15).

What a restore cannot change is baked in: the kernel, the initramfs (host files
appended included), the kernel command line, the machine, memory, accelerator
and timing mode. The key (key()) covers all of it: the QEMU binary, its whole
argv without the run directory, and the contents of the kernel and initramfs.

Layout, under the cache (one entry per key):

    templates/<arch>-<key>/
        ram          guest RAM (sparse: the pages the boot touched)
        state        the device state (the migration stream)
        meta.json    what the lab knows of the template (the marker: written last)
        manifest.json  size and sha256 of state and meta.json
        used         touched at every restore (the least recently used go first)

A template is made under its lock, in a scratch directory renamed into place
once complete, so it is finished or absent. Every use checks it: the manifest
(state and meta.json by sha256) and the RAM file's size and digest, recorded
in meta.json. The digest covers the file's data extents and their offsets
(SEEK_DATA/SEEK_HOLE): the holes of a 512 MiB file read as zeros, and hashing
them would cost 2 s; the extents (40-50 MB) take 30-50 ms, while QEMU starts
and loads the state.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from lab.core.deadline import Deadline
from lab.core.errors import InfraError
from lab.core.paths import cache_dir
from lab.guest import console
from lab.guest.console import Resume
from lab.host import cache

#: Bump when what a template holds changes (the shell's setup, the meta fields).
FORMAT = 2
RAM, STATE, META, USED = "ram", "state", "meta.json", "used"
#: What stands for the run directory in the argv a key covers.
RUNDIR = "/lab-run-dir"
#: Where a template's guest keeps its key (the restore checks it).
GUEST_MARK = "/run/lab-template"
#: The FIFOs of the guest tool images/tools/present.c, which a template's guest
#: runs in the background: a clone's clock and random pool are set through it.
PRESENT_IN, PRESENT_OUT = "/run/lab-present.in", "/run/lab-present.out"
#: Templates kept at most; making one more removes the least recently used.
MAX_TEMPLATES = 12
#: meta.json's fields that must be there, and their types.
META_FIELDS = {"format": int, "key": str, "arch": str, "session": str, "tx_base": int,
               "kernel_release": str, "dmesg_lines": int, "ram_size": int,
               "ram_digest": str, "ram_mtime_ns": int, "cold_boot_s": float}
_EXTENT_READ = 1 << 20


@dataclass(frozen=True)
class TemplateMeta:
    """meta.json: what the lab knows of a template; this module is its one writer
    (finish) and its one reader (lookup)."""

    key: str
    arch: str
    session: str            # the template shell's session (console.Resume)
    tx_base: int
    kernel_release: str
    kpti_active: bool | None
    dmesg_lines: int        # the kernel log's length when the state was saved
    cold_boot_s: float
    cmdline: str = ""
    made: float = 0.0       # seconds since the epoch
    format: int = 0
    ram_size: int = 0       # the RAM file as it was saved: size, mtime, digest
    ram_mtime_ns: int = 0
    ram_digest: str = ""
    #: The next /dev/kmsg record's sequence number when the state was saved (a
    #: clone reports a gap from there); None in templates made before it was kept.
    kmsg_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_json(cls, path: Path, d: dict[str, Any]) -> TemplateMeta:
        """CorruptEntry (naming path) unless d has META_FIELDS with their types."""
        cache.require(path, d, META_FIELDS)
        known = {f.name for f in fields(cls)}
        seq = d.get("kmsg_seq")
        d = {**d, "kmsg_seq": seq if type(seq) is int and seq >= 0 else None}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Template:
    """A finished template, as found in the cache (not yet checked: verify())."""

    path: Path
    meta: TemplateMeta

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def ram(self) -> Path:
        return self.path / RAM

    @property
    def state(self) -> Path:
        return self.path / STATE

    def resume(self) -> Resume:
        """What a shell on a clone of this template carries over (console.Resume)."""
        return Resume(self.meta.session, self.meta.tx_base, self.meta.kmsg_seq)


# ---------------------------------------------------------------- the key

def key(argv: list[str], image: Path, initramfs: Path) -> str:
    """The template key of a guest: its QEMU argv, made with RUNDIR as the run
    directory (machine, CPU, memory, accelerator, icount, the kernel and initramfs
    paths, the command line), the QEMU binary it runs, the contents of the kernel
    and the initramfs, and the lab's shell protocol."""
    return cache.sha(f"format={FORMAT}", _shell_protocol(), qemu_identity(argv[0]), *argv,
                     content_sha(image), content_sha(initramfs))


@functools.cache
def _shell_protocol() -> str:
    """The source of lab/guest/console.py: a template holds a shell that its setup()
    prepared (functions, settings, files), which a clone's Shell must speak to."""
    return cache.file_sha(Path(console.__file__))


def qemu_identity(exe: str) -> str:
    """The QEMU binary: its resolved path, size and mtime (a new QEMU version is a
    new binary; asking `--version` would cost a process per key)."""
    found = shutil.which(exe)
    if found is None:
        return f"{exe} (not installed)"
    path = Path(found).resolve()
    st = path.stat()
    return f"{path} {st.st_size} {st.st_mtime_ns}"


def content_sha(path: Path) -> str:
    """sha256 of a file's contents: what the cache's manifest recorded for it when
    that still fits the file's size (the cache checked it on this use), else hashed."""
    st = path.stat()
    return _recorded_sha(path, st.st_size) or _hashed(path, st.st_size, st.st_mtime_ns,
                                                      st.st_ino)


def _recorded_sha(path: Path, size: int) -> str | None:
    """The sha256 a manifest beside the file (a file entry) or in its directory
    (a directory entry) records for it, if its size is the file's."""
    for mfile, name in ((cache.manifest_path(path), "."), (path.parent / cache.MANIFEST,
                                                          path.name)):
        if not mfile.is_file():
            continue
        stamp = cache.read_json(mfile).get("files", {}).get(name)
        if isinstance(stamp, dict) and stamp.get("size") == size and \
                isinstance(stamp.get("sha256"), str):
            return stamp["sha256"]
    return None


@functools.lru_cache(maxsize=64)
def _hashed(path: Path, size: int, mtime_ns: int, ino: int) -> str:
    return cache.file_sha(path)


# ---------------------------------------------------------------- the store

def template_dir(arch: str, key: str) -> Path:
    return cache_dir() / "templates" / f"{arch}-{key[:24]}"


def _lock(path: Path) -> str:
    return f"template-{path.name}"


def lookup(arch: str, key: str) -> Template | None:
    """The finished template of key, or None; CorruptEntry if its meta.json is
    not the lab's (verify() checks the rest)."""
    path = template_dir(arch, key)
    cache.hold(path)               # cache gc leaves it while this process may clone it
    if not (path / META).is_file():
        return None
    return Template(path, TemplateMeta.from_json(path / META, cache.load_json(path / META)))


def _record(root: Path) -> list[Path]:
    return [root / STATE, root / META]


def verify(template: Template, key: str) -> None:
    """CorruptEntry unless the template is what was made for key: the manifest
    (state, meta.json), then the RAM file's size and digest."""
    if template.key != key or template.meta.format != FORMAT:
        raise cache.CorruptEntry(template.path / META, "made for another key or format")
    if not cache.verify(template.path, _record, _check_ram(template)):
        raise cache.CorruptEntry(template.path / cache.MANIFEST, "missing")


def _check_ram(template: Template):
    def check(root: Path) -> None:
        size, digest = ram_digest(root / RAM, template.meta.ram_size)
        if digest != template.meta.ram_digest:
            raise cache.CorruptEntry(root / RAM, "its bytes changed since the template "
                                                 "was made (digest differs)")
    return check


def ram_digest(path: Path, expect_size: int | None = None) -> tuple[int, str]:
    """(size, sha256 over the data extents and their offsets). A size other than
    expect_size is a CorruptEntry (a truncation, say) before any reading."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise cache.unreadable(path, exc) from None
    try:
        size = os.fstat(fd).st_size
        if expect_size is not None and size != expect_size:
            what = "truncated: " if size < expect_size else ""
            raise cache.CorruptEntry(path, f"{what}{size} bytes of {expect_size}")
        h = hashlib.sha256(f"{size}".encode())
        for start, end in _extents(fd, size):
            h.update(f"\0{start}:{end}\0".encode())
            for at in range(start, end, _EXTENT_READ):
                h.update(os.pread(fd, min(_EXTENT_READ, end - at), at))
        return size, h.hexdigest()
    finally:
        os.close(fd)


def _extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """The (start, end) of each data extent of the file."""
    at = 0
    while at < size:
        try:
            start = os.lseek(fd, at, os.SEEK_DATA)
        except OSError:    # ENXIO: only a hole is left
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        at = end


def check_unwritten(template: Template) -> None:
    """CorruptEntry if the RAM file changed (size or mtime) since it was made: a
    clone maps it private and must never write it."""
    try:
        st = template.ram.stat()
    except OSError as exc:
        raise cache.unreadable(template.ram, exc) from None
    if (st.st_size, st.st_mtime_ns) != (template.meta.ram_size, template.meta.ram_mtime_ns):
        raise cache.CorruptEntry(template.ram, "written since the template was made")


def discard(path: Path) -> None:
    """Remove a template (its directory) that failed its check or its restore."""
    with cache.locked(_lock(path)):
        cache.remove(path)


def touch(template: Template) -> None:
    """Mark the template used now (prune() removes the least recently used)."""
    with contextlib.suppress(OSError):
        (template.path / USED).touch()


@contextlib.contextmanager
def making(arch: str, key: str, wait: Deadline) -> Iterator[Path | None]:
    """Under the template's lock: None if it is finished (another guest made it
    meanwhile), else an empty scratch directory to make it in (finish() puts it
    in place); whatever is left of the scratch is removed at the end."""
    path = template_dir(arch, key)
    with cache.locked(_lock(path), wait):
        if (path / META).is_file():
            yield None
            return
        scratch = path.with_name(cache.PARTIAL + path.name)
        cache.remove(scratch)
        scratch.mkdir(parents=True)
        try:
            yield scratch
        finally:
            cache.remove(scratch)


def finish(scratch: Path, meta: TemplateMeta) -> Template:
    """The template made in scratch put in place (its QEMU has exited): the RAM
    file's size, mtime and digest into meta.json, the manifest, then the rename."""
    size, digest = ram_digest(scratch / RAM)
    meta = replace(meta, format=FORMAT, ram_size=size, ram_digest=digest,
                   ram_mtime_ns=(scratch / RAM).stat().st_mtime_ns)
    cache.write_json(scratch / META, meta.to_json())
    cache.adopt(scratch, _record)
    path = scratch.with_name(scratch.name.removeprefix(cache.PARTIAL))
    cache.place(scratch, path)
    touch(Template(path, meta))
    prune(keep=MAX_TEMPLATES)
    return Template(path, meta)


def prune(keep: int = MAX_TEMPLATES) -> list[Path]:
    """Remove the least recently used templates beyond keep; a template whose lock
    another guest holds (being made or removed) is left. A clone running from a
    removed one runs on: its RAM file stays mapped until its QEMU exits."""
    root = cache_dir() / "templates"
    found = [p for p in root.glob("*") if (p / META).is_file()] if root.is_dir() else []
    found.sort(key=_last_used, reverse=True)
    removed = []
    for path in found[keep:]:
        try:
            with cache.locked(_lock(path), Deadline(0)):
                cache.remove(path)
            removed.append(path)
        except InfraError:
            continue
    return removed


def _last_used(path: Path) -> float:
    for name in (USED, META):
        with contextlib.suppress(OSError):
            return (path / name).stat().st_mtime
    return 0.0
