"""The kernel source: Debian's linux-source tarball, extracted once into the
cache, or a user's own tree, named by an argument (never by the environment).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.core.errors import CommandError, UserError
from lab.core.paths import cache_dir
from lab.host import cache, packages, proc
from lab.host.command import Progress, quiet, run

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


def _git(src: Path, *args: str, deadline: float = GIT_DEADLINE_S) -> str:
    """A git command's stdout in src."""
    return proc.run(["git", "-C", src, *args], deadline=deadline,
                    merge_stderr=False).output


def _git_diff(src: Path) -> bytes:
    """The diff of tracked files against HEAD, staged or not, byte for byte
    (--output keeps it exact: no text decoding on the way)."""
    with tempfile.TemporaryDirectory(prefix="lab-diff-") as tmp:
        out = Path(tmp) / "diff"
        proc.run(["git", "-C", src, "diff", "HEAD", "--binary", f"--output={out}"],
                 deadline=GIT_DEADLINE_S)
        return out.read_bytes()


def _file_digest(path: Path) -> str:
    """A file's sha256, a link's target, or what stands in for a file gone meanwhile."""
    try:
        if path.is_symlink():
            return "link:" + os.readlink(path)
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError as exc:
        return f"unreadable:{exc.errno}"


def git_state(src: Path) -> GitState:
    """What a git tree holds beyond HEAD: tracked changes (staged or not) as a diff,
    and the untracked files that are not ignored, with their contents' hashes."""
    head = _git(src, "rev-parse", "HEAD").strip()
    diff = _git_diff(src)
    untracked = [p for p in _git(src, "ls-files", "--others", "--exclude-standard", "-z")
                 .split("\0") if p]
    dirty = [p for p in _git(src, "diff", "HEAD", "--name-only", "-z").split("\0") if p]
    described = _git(src, "describe", "--always", "--dirty", deadline=60).strip()
    return GitState(head, diff, tuple(sorted(untracked)),
                    tuple(sorted({*dirty, *untracked})), described)


@dataclass(frozen=True)
class GitState:
    head: str
    diff: bytes
    untracked: tuple[str, ...]
    dirty: tuple[str, ...]
    described: str


def tree_id(src: Path) -> str:
    """Identity of a user's kernel tree. A git tree: HEAD, the diff of tracked
    files against it (staged or not), and every untracked file that is not
    ignored, by content: any change gives a new identity, and none keeps it. A
    tree without git: every file's path, size and mtime."""
    if (src / ".git").exists():
        g = git_state(src)
        return cache.sha("git", g.head, g.diff,
                         *(f"{p}\0{_file_digest(src / p)}" for p in g.untracked))
    stamps = []
    for p in sorted(src.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            stamps.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return cache.sha("tree", str(src), *stamps)


def describe(src: Path | None) -> dict:
    """What results say of a kernel's source: its path, `git describe --dirty` (or
    the tree's hash), and the files that differ from HEAD (untracked ones too)."""
    if src is None:
        return {"path": str(packages.KERNEL_TARBALL), "describe": "linux-source-6.1",
                "dirty": []}
    if (src / ".git").exists():
        g = git_state(src)
        return {"path": str(src), "describe": g.described, "dirty": list(g.dirty[:MAX_DIRTY]),
                "dirty_count": len(g.dirty)}
    return {"path": str(src), "describe": f"tree {tree_id(src)[:12]}", "dirty": []}


#: How many dirty files a result lists (the count is always whole).
MAX_DIRTY = 100


def _extract(tarball: Path, ident: str, progress: Progress) -> Callable[[Path], str]:
    def build(scratch: Path) -> str:
        progress("extract", str(tarball))
        packages.require("xz")
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
            raise UserError(f"--kernel-src {source}: not a kernel source tree (no Makefile "
                            "and Kconfig)")
        try:
            return source.resolve(), tree_id(source)
        except CommandError as exc:
            raise UserError(f"kernel tree {source}: git cannot say what it holds: "
                            f"{exc.tail.strip().splitlines()[-1] if exc.tail.strip() else exc}"
                            ) from None
    tarball = packages.require_path(packages.KERNEL_TARBALL)
    ident = tarball_id(tarball)
    src = cache.entry(cache_dir() / "src" / f"linux-{ident[:12]}",
                      _extract(tarball, ident, progress), marker=".lab-extracted")
    return src, ident
