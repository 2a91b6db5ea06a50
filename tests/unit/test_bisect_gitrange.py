"""lab bisect's git side on tiny repositories: the range's checks and commits, the
lab's own worktree, and a user's checkout, index and stash left exactly as they were
(lab/artifacts/gitrange.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from lab.artifacts import gitrange
from lab.core.errors import UserError

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1"}


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **ENV, "GIT_OPTIONAL_LOCKS": "0"}
                          ).stdout.strip()


def commit(tree: Path, name: str, text: str, subject: str) -> str:
    (tree / name).write_text(text)
    git(tree, "add", name)
    git(tree, "commit", "-q", "-m", subject)
    return git(tree, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path, monkeypatch) -> tuple[Path, list[str]]:
    """c0..c5 on main, each changing one file; the cache in tmp_path."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))            # no ~/.gitconfig of the host's
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    tree = tmp_path / "linux"
    tree.mkdir()
    git(tree, "init", "-q", "-b", "main")
    shas = [commit(tree, "Makefile", f"VERSION = {i}\n", f"c{i}: version {i}") for i in range(4)]
    shas.append(commit(tree, "delay.c", "int delay = 1;\n", "c4: add a delay"))
    shas.append(commit(tree, "Makefile", "VERSION = 5\n", "c5: version 5"))
    return tree, shas


def one_line(exc: pytest.ExceptionInfo) -> str:
    assert exc.value.exit_code == 2 and "\n" not in str(exc.value)
    return str(exc.value)


# ---------------------------------------------------------------- the range

def test_the_range_is_oldest_first_good_excluded_bad_included(repo):
    tree, shas = repo
    r = gitrange.commit_range(tree, shas[1][:10], "main")
    assert r.good == shas[1] and r.bad == shas[5] and r.shas == shas[2:]
    assert [c.subject for c in r.commits] == ["c2: version 2", "c3: version 3",
                                               "c4: add a delay", "c5: version 5"]
    assert r.commits[0].parents == (shas[1],) and not r.commits[0].merge
    assert r.to_json()["commits"][0]["sha"] == shas[2]


def test_merges_are_one_step_on_the_first_parent_line(repo):
    tree, shas = repo
    git(tree, "checkout", "-q", "-b", "side", shas[2])
    side = [commit(tree, "side.c", f"int s = {i};\n", f"side {i}") for i in range(2)]
    git(tree, "checkout", "-q", "main")
    git(tree, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    merge = git(tree, "rev-parse", "HEAD")
    r = gitrange.commit_range(tree, shas[1], "main")
    assert r.shas == [*shas[2:], merge]
    assert not set(side) & set(r.shas) and r.commits[-1].merge
    with pytest.raises(UserError) as exc:                 # good on the merged branch
        gitrange.commit_range(tree, side[0], "main")
    assert "not on --bad main's first-parent line" in one_line(exc)


@pytest.mark.parametrize("good, bad, said", [
    ("v9", "main", "--good 'v9': no such commit in"),
    ("main", "nope~3", "--bad 'nope~3': no such commit in"),
    ("--all", "main", "--good '--all': not a revision"),
    ("HEAD", "main", "are the same commit"),
    ("main", "HEAD~3", "--bad HEAD~3 is an ancestor of --good main: the range runs backwards"),
])
def test_bad_revisions_are_one_line_exit_2(repo, good, bad, said):
    tree, _ = repo
    with pytest.raises(UserError) as exc:
        gitrange.commit_range(tree, good, bad)
    assert said in one_line(exc)


def test_good_not_in_bads_history_is_refused(repo):
    tree, shas = repo
    git(tree, "checkout", "-q", "-b", "other", shas[1])
    commit(tree, "other.c", "x\n", "elsewhere")
    with pytest.raises(UserError) as exc:
        gitrange.commit_range(tree, "other", "main")
    assert "is not an ancestor of --bad main" in one_line(exc)


def test_a_tree_that_is_not_git_or_not_its_top_is_refused(repo, tmp_path):
    tree, _ = repo
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UserError) as exc:
        gitrange.commit_range(plain, "HEAD~1", "HEAD")
    assert "not a git tree" in one_line(exc)
    (tree / "sub").mkdir()
    with pytest.raises(UserError) as exc:
        gitrange.commit_range(tree / "sub", "HEAD~1", "HEAD")
    assert "a directory inside the git tree" in one_line(exc)
    with pytest.raises(UserError) as exc:
        gitrange.commit_range(tmp_path / "missing", "HEAD~1", "HEAD")
    assert "no such directory" in one_line(exc)


# ---------------------------------------------------------------- the worktree

def snapshot(tree: Path) -> dict[str, str]:
    """What the user sees: status, HEAD, the branch, the stash, the index (its
    entries, the staged diff, and the file's bytes)."""
    index = hashlib.sha256((tree / ".git" / "index").read_bytes()).hexdigest()
    return {"status": git(tree, "status", "--porcelain=v1", "--untracked-files=all"),
            "head": git(tree, "rev-parse", "HEAD"), "branch": git(tree, "symbolic-ref", "HEAD"),
            "stash": git(tree, "stash", "list"), "staged": git(tree, "diff", "--cached"),
            "entries": git(tree, "ls-files", "--stage"), "index": index,
            "files": "\n".join(f"{p.name}:{p.read_text()}" for p in sorted(tree.glob("*.c")))
            + (tree / "Makefile").read_text()}


@pytest.fixture
def busy(repo):
    """The repo as a person left it mid-work: a stash, a staged change, an unstaged
    one, an untracked file, and a post-checkout hook that would leave a mark."""
    tree, shas = repo
    (tree / "Makefile").write_text("VERSION = stashed\n")
    git(tree, "stash", "-q")
    (tree / "delay.c").write_text("int delay = 2;   /* staged */\n")
    git(tree, "add", "delay.c")
    (tree / "Makefile").write_text("VERSION = unstaged\n")
    (tree / "new.c").write_text("untracked\n")
    hook = tree / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {tree.parent / 'hook-ran'}\n")
    hook.chmod(0o755)
    return tree, shas


def test_the_users_checkout_index_and_stash_are_untouched(busy, tmp_path):
    tree, shas = busy
    before = snapshot(tree)
    assert before["stash"] and before["staged"] and "?? new.c" in before["status"]
    r = gitrange.commit_range(tree, shas[1], shas[5])
    wt = gitrange.worktree(tree, r.good)
    wt.checkout(shas[3])
    assert wt.revert_applies(shas[4], shas[5])
    assert not wt.revert_applies(shas[3], shas[5])
    wt.checkout(shas[2])
    assert snapshot(tree) == before
    assert not (tmp_path / "hook-ran").exists()


def test_the_worktree_has_a_stable_path_in_the_cache_and_moves_at_will(repo, tmp_path):
    tree, shas = repo
    wt = gitrange.worktree(tree, shas[1])
    assert wt.path.parent == tmp_path / "cache" / "bisect" and wt.repo == tree.resolve()
    assert wt.path.name.startswith("lab-bisect-") and wt.head() == shas[1]
    assert (wt.path / "Makefile").read_text() == "VERSION = 1\n"
    wt.checkout(shas[4])
    assert wt.head() == shas[4] and (wt.path / "delay.c").exists()
    (wt.path / "Makefile").write_text("scribbled\n")
    again = gitrange.worktree(tree, shas[2])              # reused, and cleaned by checkout
    assert again.path == wt.path and again.head() == shas[2]
    assert (wt.path / "Makefile").read_text() == "VERSION = 2\n"
    assert not (wt.path / "delay.c").exists()
    assert gitrange.worktree_path(tree) == wt.path


def test_a_worktree_whose_directory_is_gone_is_made_again(repo):
    tree, shas = repo
    wt = gitrange.worktree(tree, shas[1])
    subprocess.run(["rm", "-rf", str(wt.path)], check=True)
    again = gitrange.worktree(tree, shas[3])
    assert again.path == wt.path and again.head() == shas[3]


def test_a_revert_that_applies_is_left_for_the_build_and_one_that_does_not_leaves_onto(repo):
    tree, shas = repo
    wt = gitrange.worktree(tree, shas[5])
    assert wt.revert_applies(shas[4], shas[5])            # the delay goes away
    assert not (wt.path / "delay.c").exists() and wt.head() == shas[5]
    assert not wt.revert_applies(shas[2], shas[5])        # Makefile changed since
    assert wt.head() == shas[5] and git(wt.path, "status", "--porcelain") == ""
    wt.checkout(shas[5])                                  # after a clean revert, too
    assert (wt.path / "delay.c").exists() and git(wt.path, "status", "--porcelain") == ""


def test_a_merge_reverts_against_its_first_parent(repo):
    tree, shas = repo
    git(tree, "checkout", "-q", "-b", "side", shas[5])
    commit(tree, "side.c", "int s;\n", "side")
    git(tree, "checkout", "-q", "main")
    commit(tree, "main.c", "int m;\n", "main moves on")
    git(tree, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    merge = git(tree, "rev-parse", "HEAD")
    wt = gitrange.worktree(tree, merge)
    assert wt.revert_applies(merge, merge)
    assert not (wt.path / "side.c").exists() and (wt.path / "main.c").exists()
