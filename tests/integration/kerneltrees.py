"""Kernel git trees for the own-tree and bisect tests, cheap to make and to build.

A tree's files are hard links to the cache's extracted Debian source (kbuild never
writes into a source tree), except the files a test edits, which are its own; git
tracks those and ignores the rest (ignored files are no part of a tree's identity,
and adding 75,000 files to git would take minutes). Its path stays from run to run
(in the cache, which a reused machine keeps), so the lab's build tree for it stays
too, and a second run compiles little.

Its first build would compile the very objects the standard aarch64 nokpti kernel's
build tree already holds (CI builds that kernel anyway), so seed_build_tree starts
a tree's build tree as a copy of that one, with the source path rewritten in
kbuild's records: kbuild then compiles what differs instead of some 700 objects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lab.arches import get_arch
from lab.artifacts import build, gitrange, kconfig
from lab.artifacts.kernel import build_tree
from lab.core.paths import cache_dir


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), "-c", "user.name=lab", "-c",
                           "user.email=lab@lab", *args], check=True, capture_output=True,
                          text=True).stdout


def exclude_all_but(files: list[Path]) -> str:
    """An info/exclude that ignores everything but files (paths in the tree)."""
    lines = ["/*"]
    for f in files:
        parts = f.parts
        for i in range(1, len(parts)):
            lines += [f"!/{'/'.join(parts[:i])}/", f"/{'/'.join(parts[:i])}/*"]
        lines.append(f"!/{f}")
    return "\n".join(dict.fromkeys(lines)) + "\n"


def link_tree(dest: Path, own: list[Path]) -> Path:
    """dest as hard links to the Debian source, with the files own its own copies
    (newer than any object a previous run compiled from its edits)."""
    src, _ = build.kernel_source()
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(src), str(dest)], check=True)
    for f in own:
        (dest / f).unlink()
        shutil.copy2(src / f, dest / f)
        os.utime(dest / f)
    (dest / ".lab-extracted").unlink(missing_ok=True)
    (dest / ".gitignore").unlink(missing_ok=True)   # Debian's ignores all at the top
    return dest


def git_tree(name: str, own: list[Path], seed: bool = True) -> Path:
    """A git tree in the cache (test-trees/NAME) tracking only own, one commit; its
    build tree seeded (a tree only lab bisect builds, in its worktree, needs none)."""
    t = link_tree(cache_dir() / "test-trees" / name, own)
    git(t, "init", "-q")
    (t / ".git" / "info" / "exclude").write_text(exclude_all_but(own))
    git(t, "add", "-A")
    git(t, "commit", "-qm", "base")
    if seed:
        seed_build_tree(t)
    return t


def seed_build_tree(tree: Path) -> None:
    """The lab's build tree for tree (aarch64 nokpti), as a copy of the standard
    kernel's, unless it is there already. kbuild rebuilds a target when its recorded
    command line or dependencies change (the .cmd files) or a prerequisite is newer:
    the copy's records name the tree's paths instead of the Debian source's, and the
    tree's files are hard links to that source (the same mtimes), so only its own
    files, newer, are compiled again."""
    build.ensure_kernel("aarch64", "nokpti")       # built by CI before this tier anyway
    src, _ = build.kernel_source()
    arch = get_arch("aarch64")
    variant = kconfig.resolve_variant(arch, "nokpti")
    std, mine = build_tree(arch, variant, src), build_tree(arch, variant, tree.resolve())
    if mine.exists() or not (std / "lab-config.stamp").exists():
        return
    scratch = mine.with_name(mine.name + ".seeding")
    shutil.rmtree(scratch, ignore_errors=True)
    subprocess.run(["cp", "-a", str(std), str(scratch)], check=True)
    old, new = str(src), str(tree.resolve())
    listed = subprocess.run(["grep", "-rlIF", "--null", old, str(scratch / "obj")],
                            capture_output=True, check=False).stdout.split(b"\0")
    for name in filter(None, listed):
        path = Path(name.decode())
        if not path.is_symlink():
            path.write_text(path.read_text().replace(old, new))
    for link in (scratch / "obj").glob("source"):
        link.unlink()
        link.symlink_to(new)
    scratch.rename(mine)


def lab_worktree(tree: Path, own: list[Path]) -> Path:
    """The worktree lab bisect keeps for tree, made as a reused machine would have it:
    `git worktree add` checks out only what git tracks, so the ignored rest of this
    tree is linked in as the tree has it; and its build tree seeded."""
    path = gitrange.worktree_path(tree)
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    src, _ = build.kernel_source()
    subprocess.run(["cp", "-al", str(src), str(path)], check=True)
    for f in [*own, Path(".lab-extracted"), Path(".gitignore")]:
        (path / f).unlink(missing_ok=True)
    scratch = path.with_name(path.name + ".git")
    shutil.rmtree(scratch, ignore_errors=True)
    git(tree, "worktree", "add", "--detach", "--no-checkout", str(scratch), "HEAD")
    (scratch / ".git").rename(path / ".git")
    shutil.rmtree(scratch)
    git(tree, "worktree", "repair", str(path))
    git(path, "checkout", "-q", "--force", "--detach", "HEAD")
    seed_build_tree(path)
    return path
