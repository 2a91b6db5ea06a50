"""The cache's bound: what is in it, and removing the least recently used.

A unit is what gc removes whole: each entry under the cache's top-level
directories (a kernel build with its modules, an extracted source, a set of
guest tools, a guest's logs), and each initramfs image of a kernel: its images
(kernels/*/initramfs-*.cpio, one for every change of the guest's tools or
drivers, so a kernel in daily use gathers dozens that nothing uses any more)
and its images with host files appended (kernels/*/with-files/*.cpio), which
grow fastest. An image no longer used goes before its kernel does; one removed
while still wanted is packed again in seconds. debs/ (the guest
packages), locks/ and test-trees/ (see NOT_UNITS) are never units; the ccache/
of an older lab, which built through ccache, is units like any other;
nor is a scratch place (a name starting with a dot), whose builder is still at
work or is cleared by the next attempt.

A process that uses an entry holds a shared flock on its use lock until it exits
(cache.hold: every cache.entry() call holds its entry). gc takes the exclusive
flock of every use lock under a unit, without waiting; if one is held the unit
is in use and stays. A removed unit is first renamed to a scratch name, so that
it is gone at once for every reader, and a gc killed halfway leaves only
scratch. The default bound is LAB_CACHE_MAX_SIZE (e.g. 20G), else 20 GiB; it is
enforced after every build.

Enforcing it must cost little next to an incremental build of a few seconds, and
the cache holds some 300,000 files. Entries under SETTLED directories are
content-addressed: made once, then only added to at their top level (an initramfs
beside a kernel). Their sizes are remembered (locks/SIZES) with the mtime of the
entry's directory, and walked again only when it changed; build trees and logs,
which change deep inside, are walked every time.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from lab.core.errors import UserError
from lab.core.paths import cache_dir
from lab.host import cache
from lab.host.command import Progress, quiet

DEFAULT_BOUND = 20 << 30
#: Top-level directories that hold no units. test-trees is the integration
#: tests' kernel tree (tests/integration/test_own_tree.py): hard links into src/,
#: so no space of its own, and 80,000 files that every gc would walk.
NOT_UNITS = ("debs", "locks", "test-trees")
#: Top-level directories whose entries change only at their first level once made.
SETTLED = ("kernels", "src", "kselftest", "tools", "busybox", "debs-unpacked", "templates")
#: The remembered sizes of settled units, under locks/.
SIZES = "sizes.json"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.I)


@dataclass(frozen=True)
class Unit:
    path: Path
    size: int          # bytes on disk
    last_use: float    # seconds since the epoch
    held: bool         # a running lab process uses it

    @property
    def name(self) -> str:
        return str(self.path.relative_to(cache_dir()))


def parse_size(text: str) -> int:
    """A size as people write it: 1G, 500M, 1.5GiB, 1073741824. UserError if not."""
    m = _SIZE.fullmatch(text.strip())
    value = float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ") if m else -1
    if not m or not math.isfinite(value) or value > 1 << 60:
        raise UserError(f"size {text!r}: not a size such as 500M, 1G or 1.5GiB")
    return int(value)


def default_bound() -> int:
    value = os.environ.get("LAB_CACHE_MAX_SIZE")
    return parse_size(value) if value else DEFAULT_BOUND


def _disk_size(path: Path, skip: frozenset[Path] = frozenset()) -> int:
    """path's size on disk, without what is in skip."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_blocks * 512 if path.exists() or path.is_symlink() else 0
    total = 0
    for root, dirs, files in os.walk(path):
        if skip:
            dirs[:] = [d for d in dirs if Path(root, d) not in skip]
            files = [f for f in files if Path(root, f) not in skip]
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _use_locks() -> dict[str, list[Path]]:
    """Every use lock, by the first two parts of the cache path it stands for
    (what a unit's path is, but for with-files images, which are found in their
    kernel's list)."""
    use = cache_dir() / "locks" / "use"
    found: dict[str, list[Path]] = {}
    for lock in use.glob("*.lock") if use.is_dir() else ():
        rel = urllib.parse.unquote(lock.name[:-len(".lock")])
        found.setdefault("/".join(rel.split("/")[:2]), []).append(lock)
    return found


def _locks_under(path: Path, listing: dict[str, list[Path]] | None = None) -> list[Path]:
    """The use locks of path and of everything under it."""
    prefix = str(path.resolve().relative_to(cache_dir().resolve()))
    candidates = (listing if listing is not None else _use_locks()).get(
        "/".join(prefix.split("/")[:2]), [])
    return [lock for lock in candidates
            if (rel := urllib.parse.unquote(lock.name[:-len(".lock")])) == prefix
            or rel.startswith(prefix + "/")]


def _load_sizes() -> dict[str, list[int]]:
    """The remembered sizes: {unit: [its directory's mtime_ns, size]}; anything else
    in the file (damage, another lab's format) is forgotten, never trusted."""
    try:
        data = cache.load_json(cache_dir() / "locks" / SIZES)
    except cache.CorruptEntry:
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 2
            and all(type(n) is int and n >= 0 for n in v)}


def _unit_size(path: Path, inner: frozenset[Path], sizes: dict[str, list[int]]) -> int:
    """path's size on disk, without the units inside it; a settled unit's as
    remembered when its directory has not changed since."""
    rel = str(path.relative_to(cache_dir()))
    settled = rel.split("/")[0] in SETTLED and path.suffix != ".cpio" and path.is_dir()
    if settled:
        stamp = path.stat().st_mtime_ns
        if (known := sizes.get(rel)) and known[0] == stamp:
            return known[1]
    size = _disk_size(path, inner)
    if settled:
        sizes[rel] = [stamp, size]
    return size


def _held(locks: list[Path]) -> bool:
    for lock in locks:
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    return False


def _images(entry: Path) -> list[Path]:
    """A kernel entry's initramfs images, each a unit of its own."""
    files = entry / "with-files"
    return sorted(entry.glob("initramfs-*.cpio")) + \
        (sorted(files.glob("*.cpio")) if files.is_dir() else [])


def _paths() -> Iterator[tuple[Path, frozenset[Path]]]:
    """Every unit's path, and what inside it is not its own (its images, with their
    manifests, and the with-files directory that holds some of them)."""
    root = cache_dir()
    for top in sorted(root.iterdir()) if root.is_dir() else ():
        if top.name in NOT_UNITS or not top.is_dir() or top.name.startswith("."):
            continue
        for child in sorted(top.iterdir()):
            if child.name.startswith(".") or child.name.endswith(".json"):
                continue
            images = _images(child) if top.name == "kernels" and child.is_dir() else []
            yield child, frozenset([*images, *(_manifest(i) for i in images),
                                    child / "with-files"])
            for image in images:
                yield image, frozenset()


def _manifest(image: Path) -> Path:
    return image.with_name(image.name + ".manifest.json")


def units() -> list[Unit]:
    """Every unit in the cache, least recently used first."""
    found = []
    listing, sizes = _use_locks(), _load_sizes()
    for path, inner in _paths():
        locks = _locks_under(path, listing)
        size = _unit_size(path, inner, sizes)
        if path.suffix == ".cpio":   # an image with its manifest beside it
            size += _disk_size(_manifest(path))
        stamps = [p.stat().st_mtime for p in (path, *locks) if p.exists()]
        found.append(Unit(path, size, max(stamps, default=0.0), _held(locks)))
    live = {u.name for u in found}
    cache.write_json(cache_dir() / "locks" / SIZES,
                     {k: v for k, v in sizes.items() if k in live})
    return sorted(found, key=lambda u: u.last_use)


def _remove(unit: Unit) -> bool:
    """Removes a unit unless a process holds it now; whether it did."""
    # The unit's own lock too, made if need be: a process about to use the unit
    # waits in cache.hold until the unit is gone, then builds it anew.
    locks = sorted({cache.use_lock(unit.path), *_locks_under(unit.path)})
    locks[0].parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for lock in locks:
            fh = stack.enter_context(open(lock, "a"))
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        gone = unit.path.with_name(f".gc-{unit.path.name}-{os.getpid()}-{time.monotonic_ns()}")
        unit.path.rename(gone)
        cache.remove(gone)
        if unit.path.suffix == ".cpio":
            cache.remove(_manifest(unit.path))
    # The lock files stay (a few bytes each): one unlinked under a process that
    # waits on it would hide that process's use from the next gc.
    return True


def collect(max_bytes: int, progress: Progress = quiet) -> tuple[list[Unit], int]:
    """Removes the least recently used units not in use until the cache is within
    max_bytes (or only units in use are left); (what was removed, bytes left)."""
    everything = units()
    total = sum(u.size for u in everything)
    removed = []
    for unit in everything:
        if total <= max_bytes:
            break
        if not unit.held and unit.path.exists() and _remove(unit):
            progress("cache gc", f"removed {unit.name} ({unit.size >> 20} MiB)")
            removed.append(unit)
            total -= unit.size
    return removed, total


def enforce(progress: Progress = quiet) -> None:
    """The default bound, after a build."""
    collect(default_bound(), progress)
