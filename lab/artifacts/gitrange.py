"""The git side of `lab bisect`: the range of commits between a good and a bad REV,
and a worktree of the lab's own in which to build them.

The user's checkout is never touched: no checkout, no index change, no stash. Every
command on the user's tree only reads it (rev-parse, merge-base, rev-list), except
`git worktree add`, which writes the worktree's own record under .git/worktrees/.
Everything else happens in that worktree, at a stable path in the lab's cache
(bisect/lab-bisect-<id>, one per repository), so the next step, and the next
bisection of the same tree, builds incrementally. Git commands that write in it
run with core.hooksPath=/dev/null: the user's hooks never run for the lab.

Merges: the range is the first-parent line from good to bad (`git rev-list
--first-parent --ancestry-path`), as `git bisect --first-parent` walks it. Along
that line every commit contains all the ones before it, so "bad from here on" is
one cut, which the bisection needs; a commit on a merged branch is not a step, and
a merge is one step for everything it brought in. When the culprit is a merge,
bisect its branch next (--good its merge base with the line, --bad its second
parent). good must be on bad's first-parent line (an ancestor through first
parents), else the range has no such line and the input is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.artifacts.source import GIT_DEADLINE_S
from lab.core.errors import CommandError, UserError
from lab.core.paths import cache_dir
from lab.host import cache, proc

#: For every git command that writes in the lab's worktree: no hooks of the user's.
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")


def _git(where: Path, *args: str | Path, check: bool = False,
         answer: bool = True) -> proc.Completed:
    """A git command in `where`. answer: stdout only (stderr still reaches the log's
    tail), for commands whose output is read; else both, for a refusal's reason."""
    return proc.run(["git", "-C", where, *args], deadline=GIT_DEADLINE_S, check=check,
                    merge_stderr=not answer)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(git said nothing)"


def toplevel(tree: Path) -> Path:
    """The top of the git tree `tree` is; UserError when it is not one, or is a
    directory inside one (lab bisect wants the kernel tree's own repository)."""
    if not tree.is_dir():
        raise UserError(f"--kernel-src {tree}: no such directory")
    done = _git(tree, "rev-parse", "--show-toplevel", answer=False)
    if done.returncode != 0:
        raise UserError(f"--kernel-src {tree}: not a git tree, and lab bisect needs its "
                        f"history (git: {_last_line(done.output)})")
    top = Path(_last_line(done.output)).resolve()
    if top != tree.resolve():
        raise UserError(f"--kernel-src {tree}: a directory inside the git tree {top}, not "
                        "the top of one")
    return top


def resolve(tree: Path, rev: str, what: str = "REV") -> str:
    """REV as a full commit id; UserError (one line) when it names no commit."""
    if not rev or rev.startswith("-") or any(ord(c) < 32 for c in rev):
        raise UserError(f"{what} {rev!r}: not a revision")
    done = _git(tree, "rev-parse", "--verify", "--quiet", "--end-of-options",
                f"{rev}^{{commit}}")
    sha = done.output.strip()
    if done.returncode != 0 or not sha:
        raise UserError(f"{what} {rev!r}: no such commit in {tree}")
    return sha


def _is_ancestor(tree: Path, older: str, newer: str) -> bool:
    done = _git(tree, "merge-base", "--is-ancestor", older, newer)
    if done.returncode not in (0, 1):
        raise CommandError(f"git merge-base --is-ancestor {older} {newer} failed in {tree} "
                           f"(exit code {done.returncode})")
    return done.returncode == 0


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    parents: tuple[str, ...]

    @property
    def merge(self) -> bool:
        return len(self.parents) > 1

    def to_json(self) -> dict:
        return {"sha": self.sha, "subject": self.subject, "parents": list(self.parents)}


@dataclass(frozen=True)
class Range:
    """good..bad along bad's first-parent line: oldest first, good excluded, bad
    included (lab.analysis.bisect.CommitBisect's list)."""

    tree: Path
    good: str
    bad: str
    commits: tuple[Commit, ...]

    @property
    def shas(self) -> list[str]:
        return [c.sha for c in self.commits]

    def subject(self, sha: str) -> str:
        """A commit's subject line ("the good end" for good, which is not in the range)."""
        return next((c.subject for c in self.commits if c.sha == sha),
                    "the good end" if sha == self.good else "")

    def parent(self, sha: str) -> str:
        """A commit's first parent: the commit before it on the line (good for the first)."""
        return next(c.parents[0] for c in self.commits if c.sha == sha)

    def to_json(self) -> dict:
        return {"tree": str(self.tree), "good": self.good, "bad": self.bad,
                "commits": [c.to_json() for c in self.commits]}


def _first_parent_line(tree: Path, good: str, bad: str) -> tuple[Commit, ...]:
    out = _git(tree, "rev-list", "--first-parent", "--ancestry-path", "--reverse",
               "--no-commit-header", "--format=%H%x00%P%x00%s", f"{good}..{bad}",
               check=True).output
    commits = []
    for line in out.splitlines():
        sha, parents, subject = (line.split("\0", 2) + ["", ""])[:3]
        commits.append(Commit(sha, subject, tuple(parents.split())))
    return tuple(commits)


def commit_range(tree: Path, good: str, bad: str) -> Range:
    """The commits to bisect between --good and --bad (module docstring: merges),
    after every check of the input, each a one-line UserError: a tree that is not
    git, a REV that does not exist, good equal to bad, bad an ancestor of good,
    good not in bad's history or not on its first-parent line."""
    top = toplevel(tree)
    g, b = resolve(top, good, "--good"), resolve(top, bad, "--bad")
    if g == b:
        raise UserError(f"--good {good} and --bad {bad} are the same commit {g[:12]}: "
                        "nothing to bisect")
    if not _is_ancestor(top, g, b):
        if _is_ancestor(top, b, g):
            raise UserError(f"--bad {bad} is an ancestor of --good {good}: the range runs "
                            "backwards (are they swapped?)")
        raise UserError(f"--good {good} is not an ancestor of --bad {bad}: lab bisect "
                        "needs the good commit in the bad one's history")
    commits = _first_parent_line(top, g, b)
    if not commits or commits[0].parents[:1] != (g,):
        raise UserError(f"--good {good} is not on --bad {bad}'s first-parent line (it came "
                        "in through a merge): take --good from that line, such as the "
                        "merge's first parent")
    return Range(top, g, b, commits)


# ---------------------------------------------------------------- the lab's worktree

def _common_dir(tree: Path) -> Path | None:
    done = _git(tree, "rev-parse", "--path-format=absolute", "--git-common-dir")
    return Path(done.output.strip()).resolve() if done.returncode == 0 else None


def _path_for(common: Path) -> Path:
    return cache_dir() / "bisect" / f"lab-bisect-{cache.sha('bisect', str(common))[:12]}"


def _repository(tree: Path) -> Path:
    """tree's repository (its common git dir, shared by all its worktrees)."""
    common = _common_dir(tree)
    if common is None:
        raise UserError(f"--kernel-src {tree}: not a git tree")
    return common


def worktree_path(tree: Path) -> Path:
    """The stable path of the lab's worktree of the repository tree belongs to."""
    return _path_for(_repository(tree))


@dataclass(frozen=True)
class Worktree:
    """The lab's worktree of the user's repository: a detached HEAD it moves at will."""

    repo: Path
    path: Path

    def git(self, *args: str, check: bool = True) -> proc.Completed:
        return _git(self.path, *NO_HOOKS, *args, check=check)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").output.strip()

    def checkout(self, commit: str) -> None:
        """Move to commit, whatever was left in the worktree (a revert applied, or one
        half applied): its tracked files become the commit's."""
        self.git("revert", "--quit", check=False)
        self.git("checkout", "--quiet", "--detach", "--force", commit)

    def revert_applies(self, culprit: str, onto: str) -> bool:
        """Whether culprit reverts cleanly on onto. True leaves the worktree at onto
        with the revert applied and not committed (to build it); False leaves it at
        onto as it is. A merge is reverted against its first parent (-m 1)."""
        self.checkout(onto)
        parents = self.git("rev-list", "--parents", "-n", "1", culprit).output.split()[1:]
        mainline = ["-m", "1"] if len(parents) > 1 else []
        done = self.git("revert", "--no-commit", *mainline, culprit, check=False)
        if done.returncode == 0:
            self.git("revert", "--quit", check=False)
            return True
        self.git("revert", "--abort", check=False)
        self.checkout(onto)
        return False


def _valid(path: Path, common: Path) -> bool:
    """Whether path is a worktree of the repository whose common dir is common."""
    if not (path / ".git").is_file():
        return False
    return _common_dir(path) == common and _git(
        path, "rev-parse", "--show-toplevel").output.strip() == str(path.resolve())


def worktree(tree: Path, commit: str) -> Worktree:
    """The lab's worktree of tree's repository, at commit: made with `git worktree add
    --detach` the first time (or again when its directory is gone or broken), reused
    after that, and held (host.cache.hold) so that a cache gc does not take it. The
    lock covers making it; one bisection of a repository at a time moves it."""
    top = toplevel(tree)
    common = _repository(top)
    path = _path_for(common)
    with cache.locked(f"bisect-{path.name}"):
        if not _valid(path, common):
            cache.remove(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            # --force: the worktree may still be registered with its directory gone
            _git(top, *NO_HOOKS, "worktree", "add", "--quiet", "--detach", "--force", path,
                 commit, check=True)
        cache.hold(path)
    wt = Worktree(top, path)
    wt.checkout(commit)
    return wt
