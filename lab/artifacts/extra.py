"""Host files in a guest from its first instruction: an archive appended to its initramfs.

The kernel unpacks concatenated newc archives in order, so the lab's image plus
an archive of the user's files (lab exec --add, a scenario's files:) is one
initrd: nothing crosses the serial line, and a file may be as large as the
guest's memory holds (it is there twice while the kernel unpacks it). The
combined image is a cache entry keyed by the base image and the files' names,
kinds, modes and contents, so an unchanged tree boots the image already made.

What is added: regular files, directories and symbolic links, as they are
(a link is added as a link, never followed, so it cannot carry a host file
the user did not name). Anything else (a FIFO, a device) is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from lab.artifacts.image import Cpio, check_cpio
from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import GuestFile, KernelBuild
from lab.host import cache
from lab.host.command import Progress, quiet

#: Bounds of what one guest gets: entries, and bytes in all.
MAX_ENTRIES = 100_000
MAX_BYTES = 8 * 1024 * inputs.MIB


@dataclass(frozen=True)
class _Entry:
    name: str           # in the archive, without the leading /
    path: Path          # on the host
    mode: int           # st_mode, from lstat


def guest_file(text: str) -> GuestFile:
    """SRC[:DEST] as lab exec --add takes it; DEST defaults to /root/<name of SRC>."""
    src, sep, dest = text.rpartition(":")
    if not sep or not src:
        src, dest = text, ""
    path = Path(src)
    try:
        return GuestFile(path, inputs.guest_path(dest or f"/root/{path.resolve().name}"))
    except ValueError as exc:
        raise UserError(f"--add {text}: {exc}") from None


def _walk(f: GuestFile) -> Iterator[_Entry]:
    """f's entries, src itself first (a link named as src is followed), then a
    directory's contents in name order (links in it are added as links)."""
    name = f.dest.lstrip("/")
    try:
        src = f.src.resolve(strict=True)
        st = os.lstat(src)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"{f.src}: cannot add to the guest: "
                        f"{getattr(exc, 'strerror', None) or exc}") from None
    yield _Entry(name, src, st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        return
    for root, dirs, files in os.walk(src, onerror=_refuse):
        dirs.sort()
        for child in sorted(dirs + files):
            path = Path(root, child)
            yield _Entry(f"{name}/{path.relative_to(src).as_posix()}", path,
                         os.lstat(path).st_mode)


def _refuse(exc: OSError) -> None:
    raise UserError(f"{exc.filename}: cannot add to the guest: {exc.strerror}")


def entries(files: tuple[GuestFile, ...]) -> list[_Entry]:
    """Every entry the files add, checked: kinds and bounds."""
    found: list[_Entry] = []
    total = 0
    for f in files:
        for e in _walk(f):
            if not (stat.S_ISREG(e.mode) or stat.S_ISDIR(e.mode) or stat.S_ISLNK(e.mode)):
                raise UserError(f"{e.path}: cannot add to the guest: "
                                f"{inputs.file_problem(e.path, 0) or 'not a regular file'}")
            found.append(e)
            total += os.lstat(e.path).st_size if stat.S_ISREG(e.mode) else 0
            if len(found) > MAX_ENTRIES or total > MAX_BYTES:
                raise UserError(f"{f.src}: more than {MAX_ENTRIES:,} entries or "
                                f"{MAX_BYTES:,} bytes to add to the guest")
    return found


def _digest(e: _Entry) -> str:
    if stat.S_ISLNK(e.mode):
        return os.readlink(e.path)
    if not stat.S_ISREG(e.mode):
        return ""
    h = hashlib.sha256()
    with open(e.path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _parents(found: list[_Entry]) -> list[str]:
    """The directories above the entries, top down, for an archive of their own."""
    names = {str(p) for e in found for p in PurePosixPath(e.name).parents if str(p) != "."}
    return sorted(names, key=lambda n: (n.count("/"), n))


def _write(found: list[_Entry], base: Path):
    def write(scratch: Path) -> None:
        with open(scratch, "wb") as out:
            with open(base, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    out.write(chunk)
            cpio = Cpio(out)
            for name in _parents(found):
                cpio.dir(name)
            for e in found:
                _add(cpio, e)
            cpio.finish()
    return write


def _add(cpio: Cpio, e: _Entry) -> None:
    perm = stat.S_IMODE(e.mode)
    if stat.S_ISDIR(e.mode):
        cpio.dir(e.name, perm)
    elif stat.S_ISLNK(e.mode):
        cpio.symlink(e.name, os.readlink(e.path))
    else:
        fd = os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            cpio.copy(e.name, fh, os.fstat(fd).st_size, perm)


def with_files(kbuild: KernelBuild, files: tuple[GuestFile, ...],
               progress: Progress = quiet) -> KernelBuild:
    """kbuild booting an initramfs that also holds files (itself if there are none)."""
    if not files:
        return kbuild
    assert kbuild.initramfs is not None
    base = kbuild.initramfs
    found = entries(files)
    progress("guest files", f"{len(found)} entries")
    key = cache.sha(base.name, *(f"{e.name}\0{e.mode:o}\0{_digest(e)}" for e in found))
    image = base.parent / "with-files" / f"{base.stem}+{key[:12]}.cpio"
    image.parent.mkdir(exist_ok=True)
    cache.entry(image, _write(found, base), lock=f"{kbuild.hash[:12]}-{image.name}",
                record=cache.itself, check=check_cpio, progress=progress)
    return replace(kbuild, initramfs=image)
