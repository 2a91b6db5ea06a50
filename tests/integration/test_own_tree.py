"""Your own kernel tree (issue 10), on a real kernel: an edit rebuilds only what
depends on it, the guest runs the edit, and `git bisect run lab exec --bisect`
finds the commit that broke a check. aarch64.

The tree's files are the Debian source's, so its first build would compile the
very objects the standard aarch64 nokpti kernel's build tree already holds (CI
builds that kernel anyway). The fixture therefore starts the tree's build tree as
a copy of that one, with the source path rewritten in kbuild's records (seed_build_tree):
kbuild then compiles what differs (init/main.c, and what the release string
reaches: 13 objects) instead of some 700."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.arches import get_arch
from lab.artifacts import build, kconfig
from lab.artifacts.kernel import build_tree
from lab.core.paths import cache_dir
from tests.conftest import LAB, ROOT, lab

pytestmark = pytest.mark.qemu
MAIN = Path("init/main.c")
ARGS = ("--arch", "aarch64", "--kernel", "nokpti")


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), "-c", "user.name=lab", "-c",
                           "user.email=lab@lab", *args], check=True, capture_output=True,
                          text=True).stdout


def marker_initcall(name: str) -> str:
    ident = "lab_" + name.lower().replace("-", "_")
    return (f"\nstatic int __init {ident}(void)\n{{\n"
            f"\tpr_info(\"{name}\\n\");\n\treturn 0;\n}}\nlate_initcall({ident});\n")


def seed_build_tree(tree: Path) -> None:
    """The lab's build tree for `tree` (aarch64 nokpti), as a copy of the standard
    kernel's, unless it is there already. kbuild rebuilds a target when its recorded
    command line or dependencies change (the .cmd files) or a prerequisite is newer:
    the copy's records name the tree's paths instead of the Debian source's, and the
    tree's files are hard links to that source (the same mtimes), so only init/main.c,
    a newer file of its own, is compiled again."""
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


@pytest.fixture(scope="module")
def tree() -> Path:
    """A git tree of the kernel source: the files are hard links to the cache's
    extracted copy (kbuild never writes into a source tree), init/main.c a file of
    its own; git tracks init/main.c and ignores the rest (ignored files are not
    part of a tree's identity, and adding 75,000 files to git would take minutes).
    Its path stays from run to run (in the cache, which a reused machine keeps), so
    the lab's build tree for it stays too, and a second run compiles little."""
    src, _ = build.kernel_source()
    t = cache_dir() / "test-trees" / "linux"
    shutil.rmtree(t, ignore_errors=True)
    t.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(src), str(t)], check=True)
    (t / MAIN).unlink()
    shutil.copy2(src / MAIN, t / MAIN)
    os.utime(t / MAIN)      # newer than the object a previous run compiled from its edits
    (t / ".lab-extracted").unlink(missing_ok=True)
    (t / ".gitignore").unlink()     # Debian's: it ignores everything at the top level
    git(t, "init", "-q")
    (t / ".git" / "info" / "exclude").write_text("/*\n!/init/\n/init/*\n!/init/main.c\n")
    git(t, "add", "-A")
    git(t, "commit", "-qm", "base")
    seed_build_tree(t)
    return t


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
