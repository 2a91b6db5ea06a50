"""Kernel builds: configure, verify, compile, record; cached by content hash.

A kernel's cache key covers the recipe, the source's identity, the arch, the
toolchain and every fragment's bytes. The compile itself happens in a build
tree that stays, one per source tree (by path), arch and variant
(trees/<arch>-<variant>-<hash of the path>/obj), as a developer's build
directory does: after an edit, kbuild's own dependency tracking rebuilds what
depends on it and nothing else, and the tree's path never changes, so nothing
that records paths (x86's objtool, the .cmd files) forces a full rebuild. Each
finished build is then recorded under its content key: the image, the .config,
and a copy of the tree without its object files (obj/: what out-of-tree module
builds and modules_install need), so a result names exactly what it booted
while the tree moves on. The configure step runs only when the fragments
change. There is no ccache: within a tree kbuild's own tracking already
skips what did not change, and a new variant's tree starts as a copy of a
sibling's (_seed), so a compiler cache would only add its own cost to every
miss (a cold build took 20-33% longer through ccache, measured on kernel/, fs/
and mm/ of the x86_64 kernel).

An entry's manifest records its image, config and meta.json (see cache); its
meta.json must also hold what the lab reads, with the right types, and its
image must be as long as the build tree's copy (which catches a truncated
image even in an entry a lab before manifests wrote).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.arches import ARCHES
from lab.artifacts import kconfig
from lab.artifacts.source import describe, kernel_source
from lab.core.errors import BuildError, UserError
from lab.core.model import ArchProfile, KconfigRequest, KernelBuild, KernelVariant
from lab.core.paths import cache_dir
from lab.host import cache, proc
from lab.host.cache import CorruptEntry
from lab.host.command import Progress, quiet, run

#: Deadline of each phase's command(s), in seconds; a phase that overruns is
#: killed (whether or not it prints) and fails the build.
DEADLINE_S = {
    "configure": 600.0,     # tinyconfig, merge_config.sh, olddefconfig: each
    "compile": 3600.0,      # the image and the in-tree modules
    "kernelrelease": 120.0,
    "version": 60.0,        # a compiler's --version
}


# ---------------------------------------------------------------- toolchain

@functools.cache
def compiler_id(cc: str) -> str:
    """The compiler's first --version line (asked once per process)."""
    out = proc.run([cc, "--version"], deadline=DEADLINE_S["version"], check=False,
                   merge_stderr=False).output
    return out.splitlines()[0] if out else cc


def toolchain_id(arch: ArchProfile) -> str:
    return compiler_id(arch.cross_compile + "gcc")


def make_argv(arch: ArchProfile, src: Path, obj: Path) -> list[str]:
    """make in the kernel tree src, building into obj, for arch."""
    argv = ["make", "-C", str(src), f"O={obj}", f"ARCH={arch.kernel_arch}"]
    if arch.cross_compile:
        argv.append(f"CROSS_COMPILE={arch.cross_compile}")
    return argv


# ---------------------------------------------------------------- the cache

#: Bump when the way a kernel is compiled changes in a way its build tree records
#: (kbuild recompiles every object whose command changed). 2: CC without ccache, so
#: every tree, and every seed a new tree is copied from, is compiled the same way.
KERNEL_RECIPE = 2


def kernel_key(arch: ArchProfile, variant: KernelVariant, source_id: str) -> str:
    frags = kconfig.fragments_for(arch, variant)
    return cache.sha(f"recipe={cache.RECIPE}", f"kernel-recipe={KERNEL_RECIPE}",
                     f"source={source_id}", f"arch={arch.name}",
                     f"toolchain={toolchain_id(arch)}", *(p.read_bytes() for p in frags))


#: A +dbg kernel's entry keeps its vmlinux under this name.
VMLINUX = "vmlinux"


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


#: What the lab reads from a kernel's meta.json, and its type.
META_FIELDS: dict[str, type] = {
    "arch": str, "kernel": str, "hash": str, "image": str, "release": str, "source": str,
    "options": dict}


def _meta(kdir: Path) -> dict:
    """kdir's meta.json; CorruptEntry if it is not what the lab wrote."""
    path = kdir / "meta.json"
    meta = cache.load_json(path)
    cache.require(path, meta, META_FIELDS)
    if meta["arch"] not in ARCHES or Path(meta["image"]).name != meta["image"] \
            or meta["image"] in ("", ".", ".."):
        raise CorruptEntry(path, f"a bad 'arch' or 'image' ({meta['arch']!r}, {meta['image']!r})")
    built = meta.get("image_path", "")
    if not isinstance(built, str) or Path(built).is_absolute() or ".." in Path(built).parts:
        raise CorruptEntry(path, f"a bad 'image_path' ({built!r})")
    if len(meta["hash"]) < 12 or not kdir.name.endswith(meta["hash"][:12]):
        raise CorruptEntry(path, f"its hash {meta['hash'][:12]!r} is not this entry's")
    return meta


def kernel_artifacts(kdir: Path) -> list[Path]:
    """A kernel entry's artifacts (its cache.Record)."""
    meta = _meta(kdir)
    return [kdir / meta["image"], kdir / "config", kdir / "meta.json",
            *([kdir / VMLINUX] if meta.get("vmlinux") == VMLINUX else [])]


def _check(kdir: Path) -> None:
    """A kernel entry's cache.Check: its meta.json, and its image as long as
    the build tree's copy of it (when the tree is there)."""
    meta = _meta(kdir)
    built = kdir / "obj" / meta.get("image_path", ARCHES[meta["arch"]].image_path)
    image = kdir / meta["image"]
    try:
        size, want = image.stat().st_size, built.stat().st_size
    except FileNotFoundError:
        return                      # a missing image: the manifest says so
    if size != want:
        cut = "truncated: " if size < want else ""
        raise CorruptEntry(image, f"{cut}{size} bytes, but the build tree's {built} has {want}")


def verify_kernel(kdir: Path) -> None:
    """Check a finished kernel entry as its next use would; CorruptEntry if
    it is corrupt. Reads only (an entry without a manifest passes its check)."""
    cache.verify(kdir, kernel_artifacts, _check)


def _from_meta(kdir: Path) -> KernelBuild:
    meta = _meta(kdir)
    info = meta.get("source_info") or {}
    return KernelBuild(arch=meta["arch"], kernel=meta["kernel"], hash=meta["hash"],
                       image=kdir / meta["image"], config=kdir / "config",
                       build_dir=kdir / "obj", release=meta["release"],
                       source_path=str(info.get("path", meta.get("source", ""))),
                       source=str(info.get("describe", "")),
                       vmlinux=kdir / VMLINUX if meta.get("vmlinux") == VMLINUX else None)


def cached_kernel(kdir: Path) -> KernelBuild:
    """The finished kernel entry at kdir, checked; CorruptEntry if it is corrupt."""
    verify_kernel(kdir)
    return _from_meta(kdir)


def kernel_meta(build: KernelBuild) -> dict:
    return _meta(build.image.parent)


def kernel_entries(pattern: str = "*") -> list[Path]:
    """Finished kernel entries (intact or not) whose names match pattern;
    never a scratch place."""
    return [meta.parent for meta in sorted(kernels_dir().glob(f"{pattern}/meta.json"))
            if not meta.parent.name.startswith(".")]


def trees_dir() -> Path:
    return cache_dir() / "trees"


def build_tree(arch: ArchProfile, variant: KernelVariant, src: Path) -> Path:
    """The build tree that stays for this source tree (by path), arch and variant."""
    return trees_dir() / f"{arch.name}-{variant.name}-{cache.sha(str(src))[:12]}"


#: A new build tree starts as a copy of a built sibling's (the same source tree and
#: arch, another variant) whose .config differs from its own in at most this many
#: options: kbuild then compiles what the changed options touch (fixdep records
#: which options each object read), not every object. kpti and nokpti differ in a
#: handful; a debug kernel's sanitizers change every object's flags, and it starts
#: empty.
SEED_MAX_OPTIONS = 40


def _seed(plan: _Plan, tree: Path, progress: Progress) -> str | None:
    """Fill a just-configured, never-built tree from its closest built sibling, if one
    is close enough; the sibling's name, or None. The tree keeps its own .config (made
    newer than the copied auto.conf, so make's syncconfig marks the changed options)."""
    obj = tree / "obj"
    mine = kconfig.parse_config(obj / ".config")
    suffix = tree.name.rsplit("-", 1)[1]
    best: tuple[int, Path] | None = None
    for sib in trees_dir().glob(f"{plan.arch.name}-*-{suffix}"):
        if sib == tree or not (sib / "obj" / "vmlinux").is_file():
            continue                    # not built (or being built for the first time)
        theirs = kconfig.parse_config(sib / "obj" / ".config")
        differ = sum(mine.get(k, "n") != theirs.get(k, "n") for k in {*mine, *theirs})
        if differ <= SEED_MAX_OPTIONS and (best is None or differ < best[0]):
            best = (differ, sib)
    if best is None:
        return None
    differ, sib = best
    progress("seed", f"from {sib.name} ({differ} options differ)")
    config = (obj / ".config").read_bytes()
    shutil.rmtree(obj)
    with cache.locked(f"tree-{sib.name}"):
        shutil.copytree(sib / "obj", obj, symlinks=True)
    (obj / ".config").write_bytes(config)       # written last: newer than auto.conf
    return sib.name


# ---------------------------------------------------------------- one build

@dataclass(frozen=True)
class _Plan:
    """What one kernel build needs, settled before anything runs."""

    arch: ArchProfile
    variant: KernelVariant
    src: Path
    source_id: str
    fragments: tuple[Path, ...]
    wanted: dict[str, KconfigRequest]
    key: str
    toolchain: str
    jobs: int
    #: The user's tree (None: Debian's linux-source), for what results say of it.
    user_src: Path | None = None

    @property
    def image(self) -> tuple[str, str]:
        """The make target and path of the image the lab boots: the arch's, or
        its kasan_image when the fragments ask for KASAN."""
        kasan = self.wanted.get("KASAN")
        if self.arch.kasan_image and kasan is not None and kasan.value == "y":
            return self.arch.kasan_image
        return self.arch.image_target, self.arch.image_path

    @property
    def label(self) -> str:
        return f"{self.arch.name}/{self.variant.name}"

    def make(self, obj: Path) -> list[str]:
        return make_argv(self.arch, self.src, obj)


def _plan(arch: ArchProfile, variant: KernelVariant, source: Path | None,
          progress: Progress, jobs: int | None) -> _Plan:
    """Fragments first (a bad line fails at once, before any source work), then
    the source and the cache key."""
    frags = tuple(kconfig.fragments_for(arch, variant))
    wanted = kconfig.effective_requests(list(frags))
    src, source_id = kernel_source(source, progress)
    return _Plan(arch, variant, src, source_id, frags, wanted,
                 kernel_key(arch, variant, source_id), toolchain_id(arch),
                 jobs or os.cpu_count() or 1, source)


def _config_stamp(plan: _Plan) -> str:
    """What the build tree's .config was made from: the fragments' bytes."""
    return cache.sha(plan.arch.name, *(p.read_bytes() for p in plan.fragments))


def _maybe_configure(plan: _Plan, tree: Path, log: Path, progress: Progress) -> None:
    """Configure the tree unless its .config was made from these very fragments
    (a source edit to a Kconfig file is kbuild's: make syncs it)."""
    stamp, obj = tree / "lab-config.stamp", tree / "obj"
    if (obj / ".config").is_file() and stamp.is_file() \
            and stamp.read_text() == _config_stamp(plan):
        return
    obj.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    _configure(plan, obj, log, progress)
    _verify(plan, obj, progress)
    stamp.write_text(_config_stamp(plan))


def _configure(plan: _Plan, obj: Path, log: Path, progress: Progress) -> None:
    """tinyconfig, the fragments merged in order, then olddefconfig."""
    progress("configure", "tinyconfig")
    limit = DEADLINE_S["configure"]
    run([*plan.make(obj), "tinyconfig"], phase="configure", deadline=limit, log=log,
        progress=progress)
    run([plan.src / "scripts/kconfig/merge_config.sh", "-m", "-O", obj, obj / ".config",
         *plan.fragments], phase="merge fragments", deadline=limit, log=log,
        progress=progress, cwd=plan.src)
    run([*plan.make(obj), "olddefconfig"], phase="olddefconfig", deadline=limit, log=log,
        progress=progress)


def _verify(plan: _Plan, obj: Path, progress: Progress) -> dict[str, str]:
    """The final .config, if every requested option took effect; otherwise a
    user error naming each one and its fragment's file:line."""
    progress("verify", ".config")
    final = kconfig.parse_config(obj / ".config")
    problems = kconfig.verify(plan.wanted, final)
    if problems:
        raise UserError(
            f"kernel {plan.arch.name}/{plan.variant.name}: "
            f"{len(problems)} requested option(s) did not take effect:\n  "
            + "\n  ".join(problems) + f"\nfinal config: {obj / '.config'}")
    return final


#: A line kbuild prints for each object it compiles (quiet mode).
_COMPILED = re.compile(r"^\s+CC\s+(\[M\]\s+)?\S+\.o$")


def _compile(plan: _Plan, obj: Path, log: Path, progress: Progress) -> int:
    """make the image and the modules, incrementally; how many objects it compiled
    (kbuild's CC lines in the log, which this build started empty)."""
    # `all` would build scripts_gdb (the gdb scripts' links and constants.py) when
    # GDB_SCRIPTS is on; the lab names its targets, so it names that one too.
    scripts = plan.wanted.get("GDB_SCRIPTS")
    gdb = ["scripts_gdb"] if scripts is not None and scripts.value == "y" else []
    run([*plan.make(obj), f"-j{plan.jobs}", plan.image[0], "modules", *gdb], phase="compile",
        deadline=DEADLINE_S["compile"], log=log, progress=progress)
    with open(log, encoding="utf-8", errors="replace") as fh:
        compiled = sum(1 for line in fh if _COMPILED.match(line.rstrip("\n")))
    progress("compile", f"{compiled} objects compiled")
    return compiled


#: What the recorded copy of a build tree leaves out: objects and their command
#: records (rebuilt in the tree itself, never read from a copy), the linked kernel.
SNAPSHOT_SKIP = ("*.o", ".*.cmd", "vmlinux", "vmlinux.o", "vmlinux.a", ".tmp_*")


def _snapshot(tree_obj: Path, scratch: Path) -> None:
    """The build tree as out-of-tree module builds and modules_install need it."""
    shutil.copytree(tree_obj, scratch / "obj", symlinks=True,
                    ignore=shutil.ignore_patterns(*SNAPSHOT_SKIP))


def _record(plan: _Plan, scratch: Path, obj: Path, final: dict[str, str], compiled: int,
            started: float) -> dict:
    """Copy the image, the .config and the tree (without objects) into the entry;
    return meta.json's content."""
    _snapshot(obj, scratch)
    answer = run([*plan.make(obj), "-s", "kernelrelease"], phase="kernelrelease",
                 deadline=DEADLINE_S["kernelrelease"], answer=True).strip().splitlines()
    if not answer:
        raise BuildError(f"kernel {plan.label}: make kernelrelease printed nothing",
                         str(scratch / "build.log"))
    built = plan.image[1]
    image = Path(built).name
    shutil.copy2(obj / built, scratch / image)
    shutil.copy2(obj / ".config", scratch / "config")
    debug = final.get("DEBUG_INFO") == "y"
    if debug:       # a +dbg kernel: its vmlinux, for gdb and crash (lab debug)
        shutil.copy2(obj / "vmlinux", scratch / VMLINUX)
    return {
        "arch": plan.arch.name, "kernel": plan.variant.name, "hash": plan.key,
        "image": image, "image_path": built, "release": answer[-1], "source": str(plan.src),
        "source_id": plan.source_id, "source_info": describe(plan.user_src),
        "fragments": [str(p) for p in plan.fragments],
        "options": kconfig.variant_options(plan.wanted, plan.variant, final),
        "toolchain": plan.toolchain, "build_tree": str(obj.parent), "compiled": compiled,
        "build_s": round(time.monotonic() - started, 1),
        **({"vmlinux": VMLINUX} if debug else {}),
    }


def _build(plan: _Plan, progress: Progress) -> Callable[[Path], dict]:
    def build(scratch: Path) -> dict:
        started = time.monotonic()
        scratch.mkdir(parents=True)
        tree = build_tree(plan.arch, plan.variant, plan.src)
        cache.hold(tree)
        with cache.locked(f"tree-{tree.name}"):
            log, obj = tree / "build.log", tree / "obj"
            fresh = not (obj / "vmlinux").exists()
            tree.mkdir(parents=True, exist_ok=True)
            log.write_text("")
            _maybe_configure(plan, tree, log, progress)
            seeded = _seed(plan, tree, progress) if fresh else None
            compiled = _compile(plan, obj, log, progress)
            final = _verify(plan, obj, progress)
            shutil.copy2(log, scratch / "build.log")
            meta = _record(plan, scratch, obj, final, compiled, started)
            meta["seeded_from"] = seeded
        progress("done", plan.label)
        return meta
    return build


def build_kernel(arch: ArchProfile, variant: KernelVariant, *, source: Path | None = None,
                 progress: Progress = quiet, jobs: int | None = None) -> KernelBuild:
    """The kernel for arch + variant from `source` (None: Debian's tarball),
    from the cache or built now; progress is called only if something is built."""
    plan = _plan(arch, variant, source, progress, jobs)
    kdir = kernels_dir() / f"{arch.name}-{variant.name}-{plan.key[:12]}"
    return _from_meta(cache.entry(kdir, _build(plan, progress), marker="meta.json",
                                  record=kernel_artifacts, check=_check, progress=progress))


# ---------------------------------------------------------------- what an option needs

def option_needs(build: KernelBuild, values: dict[str, str], scratch: Path,
                 progress: Progress = quiet) -> dict[str, frozenset[str]]:
    """For each option in values (CONFIG_X -> the value wanted), the other options of
    values it cannot take that value without, as Kconfig decides (its `depends on`,
    and a `select` that keeps it on): what lab bisect --config moves with it.

    Asked of kbuild itself, not of a parse of Kconfig: build's .config with the
    option set is run through olddefconfig in scratch (a build tree of its own,
    nothing compiled); an option that takes there needs nothing. One that does not
    starts from all of values (with which it takes: they are a built kernel's
    .config) and drops each other option it still takes without.
    """
    src = Path(kernel_meta(build)["source"])
    arch = ARCHES[build.arch]
    scratch.mkdir(parents=True, exist_ok=True)
    base = build.config.read_text()

    def takes(option: str, applied: frozenset[str]) -> bool:
        lines = [f"# {o} is not set" if values[o] == "n" else f"{o}={values[o]}"
                 for o in sorted(applied | {option})]
        (scratch / ".config").write_text(base + "".join(line + "\n" for line in lines))
        run([*make_argv(arch, src, scratch), "olddefconfig"], phase="olddefconfig",
            deadline=DEADLINE_S["configure"], log=scratch / "needs.log")
        final = kconfig.parse_config(scratch / ".config")
        return final.get(option.removeprefix("CONFIG_"), "n") == values[option]

    needs: dict[str, frozenset[str]] = {}
    for option in sorted(values):
        progress("needs", option)
        if takes(option, frozenset()):
            needs[option] = frozenset()
            continue
        kept = set(values) - {option}
        for other in sorted(kept):
            if takes(option, frozenset(kept - {other})):
                kept.discard(other)
        needs[option] = frozenset(kept)
    return needs
