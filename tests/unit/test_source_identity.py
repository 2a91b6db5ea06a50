"""A user's kernel tree has an identity that every change moves and nothing else
does (git trees: HEAD, staged and unstaged changes, untracked files not ignored)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.artifacts.source import describe, kernel_source, tree_id
from lab.core.errors import UserError

FAKE_TREE = Path(__file__).resolve().parent.parent / "fake" / "linux"


def git(tree: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t",
                    *args], check=True, capture_output=True)


@pytest.fixture
def tree(tmp_path) -> Path:
    t = tmp_path / "linux"
    shutil.copytree(FAKE_TREE, t, symlinks=True)
    (t / ".gitignore").write_text("*.o\nbuild/\n")
    git(t, "init", "-q")
    git(t, "add", "-A")
    git(t, "commit", "-qm", "base")
    return t


def test_an_unchanged_tree_keeps_its_identity(tree):
    assert tree_id(tree) == tree_id(tree)


def test_an_untracked_file_changes_the_identity_and_removing_it_restores_it(tree):
    base = tree_id(tree)
    new = tree / "drivers" / "new_driver.c"
    new.parent.mkdir(exist_ok=True)
    new.write_text("int x;\n")
    with_new = tree_id(tree)
    assert with_new != base
    new.write_text("int y;\n")                       # its content counts, not only its name
    assert tree_id(tree) not in (base, with_new)
    new.unlink()
    assert tree_id(tree) == base


def test_ignored_files_do_not_change_it_tracked_and_staged_changes_do(tree):
    base = tree_id(tree)
    (tree / "main.o").write_bytes(b"\x7fELF")
    (tree / "build").mkdir()
    (tree / "build" / "x").write_text("y")
    assert tree_id(tree) == base
    makefile = tree / "Makefile"
    original = makefile.read_text()
    makefile.write_text(original + "# edit\n")
    edited = tree_id(tree)
    assert edited != base
    git(tree, "add", "Makefile")                    # staged: the same change, the same tree
    assert tree_id(tree) == edited
    git(tree, "commit", "-qm", "edit")              # committed: a new HEAD
    assert tree_id(tree) not in (base, edited)
    git(tree, "reset", "-q", "--hard", "HEAD~1")
    assert tree_id(tree) == base


def test_results_describe_the_tree_and_its_dirty_files(tree):
    (tree / "Makefile").write_text((tree / "Makefile").read_text() + "# edit\n")
    (tree / "new.c").write_text("int x;\n")
    info = describe(tree)
    assert info["path"] == str(tree) and info["describe"].endswith("-dirty")
    assert info["dirty"] == ["Makefile", "new.c"] and info["dirty_count"] == 2
    assert describe(None)["describe"] == "linux-source-6.1"


def test_a_git_tree_without_a_commit_is_refused_in_one_line(tmp_path):
    t = tmp_path / "linux"
    shutil.copytree(FAKE_TREE, t, symlinks=True)
    git(t, "init", "-q")
    with pytest.raises(UserError, match="git cannot say what it holds"):
        kernel_source(t)
