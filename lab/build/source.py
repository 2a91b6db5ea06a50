"""The kernel source: Debian's linux-source tarball, extracted once into the
cache, or a user's own tree, named by an argument (never by the environment).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from lab import hostdeps, proc
from lab.build import cache
from lab.build.command import Progress, quiet, run
from lab.errors import UserError
from lab.paths import cache_dir

EXTRACT_DEADLINE_S = 900.0
GIT_DEADLINE_S = 300.0


def tarball_id(tarball: Path) -> str:
    """sha256 of the source tarball, remembered by path, size and mtime."""
    ids_file = cache_dir() / "src" / "ids.json"
    st = tarball.stat()
    stamp = f"{tarball}:{st.st_size}:{st.st_mtime_ns}"
    known = cache.read_json(ids_file).get(stamp)
    if known:
        return str(known)
    h = hashlib.sha256()
    with open(tarball, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    cache.update_json(ids_file, lambda ids: {**ids, stamp: digest})
    return digest


def tree_id(src: Path) -> str:
    """Identity of a user's kernel tree: its git HEAD and diff, or every file's mtime."""
    if (src / ".git").exists():
        head = proc.run(["git", "-C", src, "rev-parse", "HEAD"], deadline=60, check=False,
                        merge_stderr=False).output
        with tempfile.TemporaryDirectory(prefix="lab-diff-") as tmp:
            diff_file = Path(tmp) / "diff"
            # --output keeps the diff's bytes exact (no text decoding on the way)
            proc.run(["git", "-C", src, "diff", "HEAD", f"--output={diff_file}"],
                     deadline=GIT_DEADLINE_S, check=False)
            diff = diff_file.read_bytes() if diff_file.exists() else b""
        return cache.sha("git", head.strip(), diff)
    stamps = [f"{p}:{p.stat().st_mtime_ns}" for p in sorted(src.rglob("*")) if p.is_file()]
    return cache.sha("tree", str(src), *stamps)


def _extract(tarball: Path, ident: str, progress: Progress) -> Callable[[Path], str]:
    def build(scratch: Path) -> str:
        progress("extract", str(tarball))
        hostdeps.require("xz")
        scratch.mkdir()
        run(["tar", "-xf", tarball, "-C", scratch, "--strip-components=1"], phase="extract",
            deadline=EXTRACT_DEADLINE_S, progress=progress)
        return ident + "\n"
    return build


def kernel_source(source: Path | None = None, progress: Progress = quiet) -> tuple[Path, str]:
    """The kernel source tree and its identity: the user's tree `source`, or
    Debian's linux-source tarball extracted once into the cache."""
    if source is not None:
        if not (source / "Makefile").is_file() or not (source / "Kconfig").is_file():
            raise UserError(f"LAB_KERNEL_SRC={source}: not a kernel source tree")
        return source.resolve(), tree_id(source)
    tarball = hostdeps.require_path(hostdeps.KERNEL_TARBALL)
    ident = tarball_id(tarball)
    src = cache.entry(cache_dir() / "src" / f"linux-{ident[:12]}",
                      _extract(tarball, ident, progress), marker=".lab-extracted")
    return src, ident
