#!/usr/bin/env python3
"""lab bisect against `git bisect run lab exec --bisect`, on a planted regression.
(Not bench/bisect.py: a script's directory comes first on sys.path, and a bisect.py
there would shadow Python's bisect module, which random imports, for every script
in bench/.)

    .venv/bin/python bench/bisection.py [--commits 16] [--culprit 6] [--repeats 3] [--json F]

A tree of the kernel the lab builds (tests/integration/kerneltrees.py: hard links to
the Debian source, git tracking init/main.c and kernel/sys.c, build trees seeded
from the standard aarch64 nokpti kernel's) gets --commits commits: each adds a
comment to init/main.c (its object does not change), but the --culprit'th, which adds
udelay(3) to getppid() and nothing else (so its revert applies to the bad end); the
two after it break the build (an #error) and fix it. Each side bisects a range of its
own (its base differs by a comment), so neither finds the other's kernels in the cache.

- lab: `lab bisect --metric getppid_ns -- syscost 20000 5`, in its own worktree.
- git: `git bisect run` in the tree itself, its step a script that runs
  `lab exec --bisect --cold -- syscost 20000 5` --repeats times and calls the commit
  bad when the median of getppid_ns is above the midpoint of the two ends' medians
  (measured first with the same script, as a person would choose the threshold);
  a build failure is git's skip (125).

Prints per side: the culprit found (and whether it is the planted one), steps,
kernels built, boots, wall time; and lab/git ratios. The machine is shared and
noisy: the two sides run one after the other, so compare the counts, and the times
only roughly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.kerneltrees import git, git_tree, lab_worktree  # noqa: E402

LAB = [str(ROOT / ".venv" / "bin" / "lab")]
MAIN, SYS = Path("init/main.c"), Path("kernel/sys.c")
ARGS = ["--arch", "aarch64", "--kernel", "nokpti"]
SLOW = "\tudelay(3);\t/* bench/bisect.py: the planted regression */\n"


def plant(tree: Path, commits: int, culprit: int, side: str) -> tuple[str, str]:
    """The range, on a base of the side's own: the lab's kernel cache is by source
    content, so the side run second would otherwise find every kernel built."""
    (tree / MAIN).write_text((tree / MAIN).read_text()
                             + f"/* bench/bisect.py: the {side} side's range */\n")
    git(tree, "commit", "-qam", f"the {side} side's base")
    base = git(tree, "rev-parse", "HEAD").strip()
    planted = ""
    for i in range(1, commits + 1):
        main = (tree / MAIN).read_text().replace("#error bench/bisect.py\n", "")
        if i != culprit:        # the culprit touches sys.c alone: its revert applies
            main += f"/* bench/bisect.py [{side}]: commit {i} */\n"
        if i == culprit + 1:
            main += "#error bench/bisect.py\n"      # broken here, fixed in the next
        (tree / MAIN).write_text(main)
        if i == culprit:
            sys_c = (tree / SYS).read_text()
            head = "SYSCALL_DEFINE0(getppid)\n{\n"
            (tree / SYS).write_text("#include <linux/delay.h>\n"
                                    + sys_c.replace(head, head + SLOW, 1))
        git(tree, "commit", "-qam", f"commit {i}")
        if i == culprit:
            planted = git(tree, "rev-parse", "HEAD").strip()
    return base, planted


STEP = """#!/bin/sh
# one git bisect step: R cold boots, the median of getppid_ns against a threshold
for i in $(seq {repeats}); do
    {lab} exec --bisect --cold --kernel-src {tree} {args} -- syscost 20000 5 || exit $?
done > {log}.$$ 2>&1
echo "$(date +%s) $(git -C {tree} rev-parse HEAD)" >> {steps}
awk '/^METRIC getppid_ns/ {{print $3}}' {log}.$$ | sort -n | awk -v t={threshold} '
    {{v[NR] = $1}} END {{m = v[int((NR + 1) / 2)]; exit (m > t) ? 1 : 0}}'
"""


def median_of(tree: Path, repeats: int, built: list[int]) -> float:
    values = []
    for _ in range(repeats):
        r = subprocess.run([*LAB, "exec", "--cold", "--kernel-src", str(tree), *ARGS, "--",
                            "syscost", "20000", "5"], capture_output=True, text=True,
                           cwd=ROOT)
        values += [float(v) for v in re.findall(r"^METRIC getppid_ns (\S+)", r.stdout, re.M)]
        built.append(len(BUILT.findall(r.stderr)))
    return statistics.median(values)


#: What `lab exec` says when it built the kernel (it says nothing for a cached one).
BUILT = re.compile(r"^aarch64/nokpti built \(", re.M)


def git_side(tree: Path, base: str, repeats: int, tmp: Path) -> dict:
    started = time.monotonic()
    built: list[int] = []
    git(tree, "checkout", "-q", base)
    good = median_of(tree, repeats, built)
    git(tree, "checkout", "-q", "main")
    bad = median_of(tree, repeats, built)
    script, steps = tmp / "step.sh", tmp / "git-steps.txt"
    script.write_text(STEP.format(repeats=repeats, lab=" ".join(LAB), tree=tree,
                                  args=" ".join(ARGS), log=tmp / "step.log", steps=steps,
                                  threshold=(good + bad) / 2))
    script.chmod(0o755)
    git(tree, "bisect", "start", "main", base)
    try:
        run = subprocess.run(["git", "-C", str(tree), "bisect", "run", str(script)],
                             capture_output=True, text=True, cwd=ROOT)
    finally:
        git(tree, "bisect", "reset")
    found = re.search(r"^([0-9a-f]{40}) is the first bad commit", run.stdout, re.M)
    n = len(steps.read_text().splitlines()) if steps.exists() else 0
    builds = sum(built) + sum(len(BUILT.findall(f.read_text(errors="replace")))
                              for f in tmp.glob("step.log.*"))
    return {"culprit": found.group(1) if found else None, "steps": n + 2,
            "boots": (n + 2) * repeats, "builds": builds, "wall_s": time.monotonic() - started,
            "ends": [good, bad]}


def lab_side(tree: Path, base: str, tmp: Path) -> dict:
    started = time.monotonic()
    out = tmp / "lab-out"
    subprocess.run([*LAB, "bisect", "--kernel-src", str(tree), "--good", base, "--bad", "main",
                    *ARGS, "--metric", "getppid_ns", "--out", str(out), "--", "syscost",
                    "20000", "5"], cwd=ROOT, check=False)
    data = json.loads((out / "bisect.json").read_text())
    steps = data["steps"]
    return {"culprit": data.get("culprit"), "confirmed": data.get("confirmed"),
            "steps": len(steps),
            "builds": sum(1 for s in steps if s["compiled"] is not None and not s["reused"]),
            "boots": sum(len(s.get("samples") or []) or len(s.get("runs") or [])
                         for s in steps),
            "wall_s": time.monotonic() - started}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=16)
    ap.add_argument("--culprit", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ranges = {}
    for side in ("lab", "git"):
        tree = git_tree(f"bench-bisect-{side}", [MAIN, SYS])
        git(tree, "branch", "-M", "main")
        if side == "lab":
            lab_worktree(tree, [MAIN, SYS])
        ranges[side] = (tree, *plant(tree, args.commits, args.culprit, side))
    with tempfile.TemporaryDirectory(prefix="lab-bench-bisect-") as tmp:
        tree, base, _ = ranges["lab"]
        sides = {"lab": lab_side(tree, base, Path(tmp))}
        tree, base, _ = ranges["git"]
        sides["git"] = git_side(tree, base, args.repeats, Path(tmp))
    for name, s in sides.items():
        s["right"] = s["culprit"] == ranges[name][2]
    print(f"planted: commit {args.culprit} of {args.commits}, in a range of each side's own")
    print(f"{'':4} {'found':>8} {'right':>6} {'steps':>6} {'builds':>7} {'boots':>6} {'wall s':>8}")
    for name, s in sides.items():
        print(f"{name:4} {(s['culprit'] or '-')[:8]:>8} {str(s['right']):>6} "
              f"{s['steps']:>6} {s['builds'] if s['builds'] is not None else '-':>7} "
              f"{s['boots']:>6} {s['wall_s']:>8.0f}")
    lab, gits = sides["lab"], sides["git"]
    print(f"lab/git: wall {lab['wall_s'] / gits['wall_s']:.2f}, boots "
          f"{lab['boots'] / max(gits['boots'], 1):.2f}")
    if args.json:
        args.json.write_text(json.dumps(sides, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
