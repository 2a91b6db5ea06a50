#!/usr/bin/env python3
"""Edit to verdict in a developer's own kernel tree: the lab against kbuild itself.

    .venv/bin/python bench/edit.py --tree DIR [--arch A ...]

DIR is a git kernel tree (e.g. the one tests/integration/test_own_tree.py makes:
a copy of the source with init/main.c tracked). Per arch, with the tree built
once (`lab build --kernel-src DIR --kernel nokpti` first, untimed), three changes:

  (a) a one-line edit of init/main.c;
  (b) a declaration added to a header many files include (include/linux/kthread.h:
      311 of the aarch64 build's 806 objects);
  (c) one option toggled in the variant's fragment (CONFIG_PRINTK_TIME).

For each, both sides in the same run, in the same build tree, alternating:
'kbuild' applies the change and runs kbuild's own incremental make of the image
and modules in the lab's build tree, then boots the result to a first command
(the physical limit: compile plus boot); 'lab' applies a fresh change of the
same kind and times `lab exec --kernel-src DIR -- true` until it answers. Each
change is unique (a round number in it), so the lab never finds it cached.
The ratio lab / kbuild is the lab's overhead. The tree is restored at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.arches import ARCHES  # noqa: E402
from lab.artifacts import (  # noqa: E402
    build,
    kconfig,
)
from lab.artifacts.kernel import build_tree, make_argv  # noqa: E402
from lab.core.model import KernelBuild  # noqa: E402
from lab.guest.guest import Guest  # noqa: E402
from lab.host.command import REPRODUCIBLE_ENV  # noqa: E402

LAB = [sys.executable, "-m", "lab"]
HEADER = Path("include/linux/kthread.h")


def edit_c(tree: Path, n: int) -> None:
    """New in every run, so that no run boots a kernel an earlier run built."""
    tag = f"{n}_{time.time_ns()}"
    with open(tree / "init/main.c", "a") as fh:
        fh.write(f"\nstatic int __init lab_bench_{tag}(void)\n{{\n"
                 f"\tpr_info(\"lab bench {tag}\\n\");\n\treturn 0;\n}}\n"
                 f"late_initcall(lab_bench_{tag});\n")


def edit_h(tree: Path, n: int) -> None:
    """A declaration, not a comment: code the compiler sees, as a real edit is."""
    with open(tree / HEADER, "a") as fh:
        fh.write(f"extern int lab_bench_{n}_{time.time_ns()};\n")   # new in every run


def kbuild(arch, tree: Path, variant, booted: KernelBuild, option: bool) -> float:
    """kbuild's own incremental make in the lab's build tree (after olddefconfig
    when an option changed), then a boot of the image it made."""
    obj = build_tree(arch, variant, tree.resolve()) / "obj"
    make = [*make_argv(arch, tree.resolve(), obj)]
    env = {**os.environ, **REPRODUCIBLE_ENV}
    started = time.monotonic()
    if option:
        flag = "--disable" if "CONFIG_PRINTK_TIME=y" in (obj / ".config").read_text() \
            else "--enable"
        subprocess.run([str(tree / "scripts/config"), "--file", str(obj / ".config"), flag,
                        "PRINTK_TIME"], check=True)
        subprocess.run([*make, "olddefconfig"], check=True, env=env, stdout=subprocess.DEVNULL)
    done = subprocess.run([*make, f"-j{os.cpu_count()}", arch.image_target, "modules"],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"kbuild's make failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    with Guest(replace(booted, image=obj / arch.image_path)) as g:
        g.run("true")
    return time.monotonic() - started


def lab_exec(arch, tree: Path, kernel: str) -> float:
    started = time.monotonic()
    subprocess.run([*LAB, "exec", "--arch", arch.name, "--kernel", kernel, "--kernel-src",
                    str(tree), "--", "true"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, required=True)
    ap.add_argument("--arch", action="append", choices=sorted(ARCHES))
    args = ap.parse_args()
    tree: Path = args.tree
    saved = {p: (tree / p).read_bytes() for p in (Path("init/main.c"), HEADER)}
    for p, data in saved.items():     # a file of the tree's own: the test tree's are hard
        (tree / p).unlink()           # links into the cache's source, which must not change
        (tree / p).write_bytes(data)
    # Both edited files must be tracked: an ignored file is no part of the tree's
    # identity (the test tree tracks init/main.c only).
    subprocess.run(["git", "-C", str(tree), "add", "-f", *map(str, saved)], check=True)
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=lab", "-c", "user.email=lab@lab",
                    "commit", "-qm", "bench: track the edited files", "--allow-empty"],
                   check=True)
    print("| arch | change | kbuild make + boot (s) | lab exec (s) | lab / kbuild |")
    print("|---|---|---|---|---|")
    try:
        for name in args.arch or sorted(ARCHES):
            arch = ARCHES[name]
            frag = tree.parent / f"bench-{name}.config"
            base = kconfig.resolve_variant(arch, "nokpti")
            frag.write_text("".join(p.read_text() for p in base.fragments))
            variant = kconfig.resolve_variant(arch, str(frag))
            booted = build.ensure_kernel(arch, variant, source=tree)   # built once, untimed
            for label, change, option in (
                    ("(a) .c edit", lambda n: edit_c(tree, n), False),
                    ("(b) header edit", lambda n: edit_h(tree, n), False),
                    ("(c) one option", lambda n, f=frag: toggle(f, n), True)):
                change(1)
                k = kbuild(arch, tree, variant, booted, option)
                change(2)
                lab_s = lab_exec(arch, tree, str(frag))
                print(f"| {name} | {label} | {k:.1f} | {lab_s:.1f} | {lab_s / k:.2f} |",
                      flush=True)
    finally:
        for p, data in saved.items():
            (tree / p).write_bytes(data)


def toggle(frag: Path, n: int) -> None:
    """CONFIG_PRINTK_TIME on in odd rounds, off in even ones."""
    lines = [line for line in frag.read_text().splitlines() if "PRINTK_TIME" not in line]
    lines.append("CONFIG_PRINTK_TIME=y" if n % 2 else "# CONFIG_PRINTK_TIME is not set")
    frag.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
