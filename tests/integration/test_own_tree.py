"""Your own kernel tree (issue 10), on a real kernel: an edit rebuilds only what
depends on it, the guest runs the edit, and `git bisect run lab exec --bisect`
finds the commit that broke a check. aarch64. The tree, and its build tree seeded
from the standard kernel's, are tests/integration/kerneltrees.py's."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LAB, ROOT, lab
from tests.integration.kerneltrees import git, git_tree

pytestmark = pytest.mark.qemu
MAIN = Path("init/main.c")
ARGS = ("--arch", "aarch64", "--kernel", "nokpti")


def marker_initcall(name: str) -> str:
    ident = "lab_" + name.lower().replace("-", "_")
    return (f"\nstatic int __init {ident}(void)\n{{\n"
            f"\tpr_info(\"{name}\\n\");\n\treturn 0;\n}}\nlate_initcall({ident});\n")


@pytest.fixture(scope="module")
def tree() -> Path:
    """A git tree of the kernel source, tracking init/main.c alone."""
    return git_tree("linux", [MAIN])


def built(tree: Path) -> dict:
    """lab build of the tree; the meta.json of the kernel it printed."""
    r = lab("build", *ARGS, "--kernel-src", str(tree))
    assert r.returncode == 0, r.stderr[-3000:]
    image = re.search(r"^aarch64/nokpti: (\S+)", r.stdout, re.M)
    assert image, r.stdout
    return json.loads((Path(image.group(1)).parent / "meta.json").read_text())


def test_a_one_line_edit_rebuilds_only_what_depends_on_it_and_boots(tree):
    first = built(tree)
    # init/main.c is the tree's own file, and git makes the release 6.1.x+, which
    # recompiles what includes utsrelease.h and the modules' vermagic: 13 objects here
    assert first["compiled"] <= 30, f"the seeded build tree compiled {first['compiled']}"
    with open(tree / MAIN, "a") as fh:
        fh.write(marker_initcall("LAB-EDIT-MARKER"))
    second = built(tree)
    assert second["hash"] != first["hash"] and second["build_tree"] == first["build_tree"]
    assert 1 <= second["compiled"] <= 5, second["compiled"]   # init/main.o, the version
    assert second["source_info"]["dirty"] == ["init/main.c"]
    r = lab("exec", *ARGS, "--kernel-src", str(tree), "--", "dmesg")
    assert r.returncode == 0 and "LAB-EDIT-MARKER" in r.stdout, r.stderr[-2000:]
    git(tree, "checkout", "-q", "--", str(MAIN))


def test_git_bisect_run_finds_the_commit_that_breaks_the_check(tree):
    base = git(tree, "rev-parse", "HEAD").strip()
    bad_at = 5
    for n in range(1, 9):
        with open(tree / MAIN, "a") as fh:
            fh.write(f"/* lab bisect step {n} */\n")
            if n == bad_at:
                fh.write(marker_initcall("LAB-BISECT-BAD"))
        git(tree, "commit", "-qam", f"step {n}")
    culprit = git(tree, "rev-parse", f"HEAD~{8 - bad_at}").strip()
    git(tree, "bisect", "start", "HEAD", base)
    try:
        run = subprocess.run(["git", "-C", str(tree), "bisect", "run", *LAB, "exec", "--bisect",
                              *ARGS, "--kernel-src", str(tree), "--", "sh", "-c",
                              "! dmesg | grep -q LAB-BISECT-BAD"],
                             capture_output=True, text=True, cwd=ROOT, timeout=3600,
                             env=os.environ)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        found = re.search(r"^([0-9a-f]{40}) is the first bad commit", run.stdout, re.M)
        assert found and found.group(1) == culprit, run.stdout[-3000:]
    finally:
        git(tree, "bisect", "reset")
