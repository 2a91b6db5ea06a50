"""lab bisect over commits (issue 26), on a real kernel tree and real guests, aarch64:
a planted metric regression and a planted failure that comes 1 run in 3 are found
and confirmed in ranges of 8 commits, the user's tree is the same before and after,
also after Ctrl-C in the middle of a step, which leaves partial results and no QEMU.

The tree tracks init/main.c and kernel/sys.c (tests/integration/kerneltrees.py);
the lab's worktree of it is made as a reused machine would have it, its build tree
seeded from the standard kernel's, so each step compiles a few objects."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import LAB, ROOT, lab, lab_qemus
from tests.integration.kerneltrees import git, git_tree, lab_worktree

pytestmark = pytest.mark.qemu
MAIN, SYS = Path("init/main.c"), Path("kernel/sys.c")
ARGS = ("--arch", "aarch64", "--kernel", "nokpti")
#: getppid made slower: what the metric bisection must find.
SLOW = "\tudelay(3);\t/* lab bisect: a planted regression */\n"
#: A boot that says LAB-FLAKY 1 time in 3: what the pass/fail bisection must find
#: (kernel/sys.c has linux/random.h).
FLAKY = ("\nstatic int __init lab_flaky(void)\n{\n\tif (get_random_u32() % 3 == 0)\n"
         "\t\tpr_info(\"LAB-FLAKY\\n\");\n\treturn 0;\n}\nlate_initcall(lab_flaky);\n")


@pytest.fixture(scope="module")
def tree() -> Path:
    t = git_tree("bisect", [MAIN, SYS], seed=False)
    lab_worktree(t, [MAIN, SYS])
    return t


def append(tree: Path, path: Path, text: str) -> None:
    with open(tree / path, "a") as fh:
        fh.write(text)


def slow_getppid(tree: Path) -> None:
    sys_c = (tree / SYS).read_text()
    head = "SYSCALL_DEFINE0(getppid)\n{\n"
    assert head in sys_c
    (tree / SYS).write_text(sys_c.replace(head, head + SLOW, 1))
    if "#include <linux/delay.h>" not in sys_c:
        (tree / SYS).write_text("#include <linux/delay.h>\n" + (tree / SYS).read_text())


#: A change of code that changes nothing measured: a function nobody calls.
HARMLESS = "\nint lab_bisect_unused(int x)\n{\n\treturn x + 1;\n}\n"


def commits(tree: Path, culprit_at: int, plant, n: int = 8,
            harmless_at: int | None = None) -> tuple[str, str]:
    """n commits on HEAD, each a comment at the end of init/main.c (its object does
    not change) but the one at culprit_at, which plants in kernel/sys.c (so that its
    revert applies on the bad end), and the one at harmless_at, which adds a function
    to kernel/sys.c (so that the images after it differ from the culprit's, and the
    culprit and its revert are judged by boots); (the base, the culprit)."""
    base = git(tree, "rev-parse", "HEAD").strip()
    culprit = ""
    for i in range(1, n + 1):
        if i == culprit_at:
            plant(tree)
        elif i == harmless_at:
            append(tree, SYS, HARMLESS)
        else:
            append(tree, MAIN, f"/* lab bisect: commit {i} */\n")
        git(tree, "commit", "-qam", f"commit {i}" + (" (the culprit)" if i == culprit_at else ""))
        if i == culprit_at:
            culprit = git(tree, "rev-parse", "HEAD").strip()
    return base, culprit


def user_state(tree: Path) -> dict:
    """What lab bisect must never change in the user's tree."""
    return {"status": git(tree, "status", "--porcelain=v1", "--untracked-files=all"),
            "head": git(tree, "rev-parse", "HEAD"), "index": git(tree, "ls-files", "-s"),
            "stash": git(tree, "stash", "list"), "diff": git(tree, "diff"),
            "staged": git(tree, "diff", "--cached")}


def dirty(tree: Path) -> None:
    """A stash, a staged edit and an unstaged one, as a person's tree has."""
    append(tree, MAIN, "/* stashed */\n")
    git(tree, "stash", "-q")
    append(tree, SYS, "/* staged */\n")
    git(tree, "add", str(SYS))
    append(tree, MAIN, "/* not staged */\n")


def clean(tree: Path) -> None:
    git(tree, "reset", "-q", "--hard")
    git(tree, "stash", "clear")


def bisect(tree: Path, out: Path, base: str, *target: str) -> tuple[subprocess.CompletedProcess,
                                                                      dict]:
    r = lab("bisect", "--kernel-src", str(tree), "--good", base, "--bad", "HEAD", *ARGS,
            "--out", str(out), *target, timeout=3600)
    data = json.loads((out / "bisect.json").read_text())
    return r, data


def test_a_planted_metric_regression_is_found_and_confirmed(tree, tmp_path):
    base, culprit = commits(tree, 3, slow_getppid, harmless_at=6)
    dirty(tree)
    before = user_state(tree)
    try:
        r, data = bisect(tree, tmp_path / "out", base, "--metric", "getppid_ns", "--",
                         "syscost", "20000", "5")
        assert user_state(tree) == before
    finally:
        clean(tree)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert data["culprit"] == culprit and data["confirmed"], r.stdout
    assert data["confirmation"]["parent_held"] and data["confirmation"]["revert_held"]
    steps = {s["kind"]: s for s in data["steps"]}
    assert list(steps)[:2] == ["good end", "bad end"]
    # a comment-only commit builds an image already judged: its result is reused
    assert any(s["reused"] for s in data["steps"]), data["steps"]
    # the culprit's image is not the bad end's (a function came after it): it and the
    # revert were booted again beside both ends; its parent is the good end's image
    assert steps["culprit"]["samples"] and steps["bad end, culprit reverted"]["samples"]
    assert "byte for byte" in steps["culprit's parent"]["note"]
    assert all(s["compiled"] is not None and s["compiled"] <= 40 for s in data["steps"]
               if s["kind"] == "step" and not s["reused"]), data["steps"]
    log = (tmp_path / "out" / "bisect.log").read_text()
    assert f"git bisect bad {culprit}" in log and (tmp_path / "out" / "bisect.png").exists()
    assert culprit in (tmp_path / "out" / "reproduce.sh").read_text()
    assert "getppid" in r.stdout or "median" in r.stdout


def test_a_failure_that_comes_1_run_in_3_is_found_and_confirmed(tree, tmp_path):
    base, culprit = commits(tree, 5, lambda t: append(t, SYS, FLAKY))
    r, data = bisect(tree, tmp_path / "out", base, "--", "sh", "-c",
                     "! dmesg | grep -q LAB-FLAKY")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert data["culprit"] == culprit and data["confirmed"], r.stdout
    steps = {s["commit"]: s for s in data["steps"] if s["kind"] == "step"}
    # a good step passed every one of its runs; a bad one stopped at its first failure
    for s in steps.values():
        if s["outcome"] == "good" and not s["reused"]:
            assert len(s["runs"]) == 12 and all(s["runs"])
        if s["outcome"] == "bad" and not s["reused"]:
            assert s["runs"][-1] is False and all(s["runs"][:-1])


def test_ctrl_c_in_a_step_leaves_partial_results_no_qemu_and_the_tree(tree, tmp_path):
    base, _ = commits(tree, 2, lambda t: append(t, MAIN, "/* the step */\n"), n=2)
    dirty(tree)
    before = user_state(tree)
    out = tmp_path / "out"
    try:
        proc = subprocess.Popen([*LAB, "bisect", "--kernel-src", str(tree), "--good", base,
                                 "--bad", "HEAD", *ARGS, "--out", str(out), "--", "true"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 600
        while not lab_qemus(guests=True) and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.2)
        assert lab_qemus(guests=True), "no guest was booted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
        assert user_state(tree) == before
    finally:
        clean(tree)
    assert not lab_qemus()
    data = json.loads((out / "bisect.json").read_text())
    assert data["state"] == "interrupted"
