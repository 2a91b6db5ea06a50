"""kselftest programs for a guest: built for its arch, statically, against the
UAPI headers of the very source its kernel was built from; cached by content hash.

Cache entries, under cache_dir()/kselftest:

    headers-<arch>-<key>/usr/include   `make headers_install` of the kernel's source
                                        (UAPI headers depend on the source and the arch,
                                        not on .config: every variant of it shares them)
    <arch>-<target>-<key>/             one TARGET: install/ (what the selftests' `make
                                        install` put in its INSTALL_PATH), tests.json
                                        (what was listed, built, and why not), build.log

Each TARGET is built on its own (`make -i ... install`: a program that does not
compile or link statically is left out, the others install, and make goes on),
so one selection's build is shared by every selection that holds the TARGET, and
a program that fails to build becomes a result row, never a failed run.
The guest gets the targets and kselftest's own runner (run_kselftest.sh,
runner.sh) under GUEST_ROOT, through its initramfs (lab.artifacts.extra); the step
writes the list of what to run (kselftest-list.txt) before it runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lab.arches import get_arch
from lab.artifacts.kernel import compiler_id, kernel_meta, make_argv
from lab.core.errors import UserError
from lab.core.model import ArchProfile, GuestFile, KernelBuild
from lab.core.paths import cache_dir
from lab.host import cache, packages
from lab.host.command import Progress, quiet, run

#: Where the guest finds the suites (run_kselftest.sh and one directory per TARGET).
GUEST_ROOT = "/opt/kselftest"
#: Bump when the way targets are built changes.
KSFT_RECIPE = 1
DEADLINE_S = {"headers": 900.0, "target": 1800.0}
#: make's line for a recipe that failed under -i: the file it was making.
_IGNORED = re.compile(r"^make\[\d+\]: \[[^\]]*?: (\S+)\] Error \d+ \(ignored\)$")
_TARGET = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


@dataclass(frozen=True)
class TargetBuild:
    """One TARGET built for one arch: its tests, and the programs that did not build."""

    target: str
    install: Path                  # the INSTALL_PATH: <target>/, kselftest/, run_kselftest.sh
    tests: tuple[str, ...]         # listed by the target and built, in its order
    failed: dict[str, str]         # listed but not built: test -> why
    helpers_failed: dict[str, str] = field(default_factory=dict)   # not listed, not built
    log: Path | None = None


@dataclass(frozen=True)
class SuiteBuild:
    """What a kselftest selection puts in a guest, and what it could not build."""

    files: tuple[GuestFile, ...]
    #: The selected tests that built, as kselftest-list.txt names them (`proc:read`):
    #: the step writes its own list in the guest, so that two steps of a cell can
    #: run two selections from one image.
    selected: tuple[str, ...]
    #: The same tests, as result rows name them (`proc.read`).
    tests: tuple[str, ...]
    #: Selected tests that did not build, by row name: why.
    failed: dict[str, str]
    #: Helper programs (not tests themselves) that did not build.
    notes: tuple[str, ...] = ()


def selftests_dir(src: Path) -> Path:
    return src / "tools" / "testing" / "selftests"


def parse_selection(specs: list[str] | tuple[str, ...]) -> dict[str, list[str] | None]:
    """TARGET or TARGET:TEST words -> {target: tests (None: all of them)}, in order."""
    chosen: dict[str, list[str] | None] = {}
    for spec in specs:
        target, sep, test = spec.partition(":")
        if not _TARGET.fullmatch(target) or ".." in target.split("/") or (sep and not test):
            raise UserError(f"kselftest {spec!r}: expected TARGET or TARGET:TEST "
                            "(e.g. proc, x86:sigreturn_64)")
        if not sep:
            chosen[target] = None
        elif chosen.get(target, []) is not None:
            chosen.setdefault(target, []).append(test)   # type: ignore[union-attr]
    return chosen


def check_targets(src: Path, targets: list[str]) -> None:
    """A UserError naming each TARGET the source has no selftests directory for."""
    root = selftests_dir(src)
    unknown = [t for t in targets if not (root / t / "Makefile").is_file()]
    if unknown:
        known = sorted(p.parent.name for p in root.glob("*/Makefile"))
        raise UserError(f"no kselftest TARGET {', '.join(unknown)} in {root}; "
                        f"there are: {', '.join(known)}")


def _source(kbuild: KernelBuild) -> tuple[Path, str]:
    meta = kernel_meta(kbuild)
    return Path(meta["source"]), str(meta.get("source_id") or meta["source"])


def headers(arch: ArchProfile, src: Path, source_id: str, progress: Progress = quiet) -> Path:
    """The UAPI headers of src for arch (INSTALL_HDR_PATH/usr/include), built once."""
    key = cache.sha(f"recipe={KSFT_RECIPE}", f"source={source_id}", f"arch={arch.name}")

    def build(scratch: Path) -> None:
        progress("kselftest", f"headers_install ({arch.name})")
        scratch.mkdir()
        run([*make_argv(arch, src, scratch / "obj"), f"INSTALL_HDR_PATH={scratch / 'usr'}",
             "headers_install"], phase="headers_install", deadline=DEADLINE_S["headers"],
            log=scratch / "build.log", progress=progress)
        cache.remove(scratch / "obj")

    out = cache.entry(cache_dir() / "kselftest" / f"headers-{arch.name}-{key[:12]}", build,
                      marker=".done", progress=progress)
    return out / "usr" / "include"


def _make_vars(arch: ArchProfile, hdrs: Path, build: Path) -> list[str]:
    """The selftests' make variables: the arch, static linking, the kernel's headers,
    and objects outside the source tree."""
    return [f"ARCH={arch.kernel_arch}", f"CROSS_COMPILE={arch.cross_compile}",
            f"CC={arch.cc} -static", f"KHDR_INCLUDES=-isystem {hdrs}", f"BUILD={build}"]


def _failures(log: Path, build: Path) -> dict[str, str]:
    """Programs make gave up on (under -i), by path relative to build, with the
    last error line before each."""
    failed: dict[str, str] = {}
    recent: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        if (m := _IGNORED.match(line)) and m.group(1).startswith(f"{build}/"):
            why = next((r for r in reversed(recent) if "error" in r.lower()
                        or "undefined reference" in r), line)
            failed.setdefault(m.group(1)[len(str(build)) + 1:], why.strip()[:300])
        elif "error" in line.lower() or "undefined reference" in line:
            recent = (recent + [line])[-20:]
    return failed


def _target_build(arch: ArchProfile, src: Path, hdrs: Path, target: str, jobs: int,
                  progress: Progress):
    def build(scratch: Path) -> dict:
        progress("kselftest", f"{target} ({arch.name})")
        scratch.mkdir()
        objs, install, log = scratch / "build", scratch / "install", scratch / "build.log"
        run(["make", "-C", selftests_dir(src), f"TARGETS={target}", *_make_vars(arch, hdrs, objs),
             "-i", f"-j{jobs}", "install", f"KSFT_INSTALL_PATH={install}"],
            phase=f"kselftest {target}", deadline=DEADLINE_S["target"], log=log,
            progress=progress)
        listed = [line.partition(":")[2] for line in
                  (install / "kselftest-list.txt").read_text().splitlines()
                  if line.startswith(f"{target}:")] if (install / "kselftest-list.txt").exists() \
            else []
        broken = {Path(p).name if p.startswith(f"{target}/") else p: why
                  for p, why in _failures(log, objs).items()}
        built = [t for t in listed if (install / target / t).exists()]
        failed = {t: broken.get(t, "not built (see the build log)")
                  for t in listed if t not in built}
        helpers = {p: why for p, why in broken.items() if p not in listed}
        cache.remove(objs)
        return {"target": target, "tests": built, "failed": failed, "helpers_failed": helpers}
    return build


def build_target(arch: ArchProfile, src: Path, source_id: str, target: str,
                 progress: Progress = quiet, jobs: int = 2) -> TargetBuild:
    """One TARGET's programs for arch, built (once) and installed."""
    packages.require("rsync")   # the selftests' `make install` copies with it
    hdrs = headers(arch, src, source_id, progress)
    key = cache.sha(f"recipe={KSFT_RECIPE}", f"source={source_id}", f"arch={arch.name}",
                    f"cc={compiler_id(arch.cc)}", f"target={target}",
                    *_make_vars(arch, Path("H"), Path("B")))
    name = f"{arch.name}-{target.replace('/', '-')}-{key[:12]}"
    out = cache.entry(cache_dir() / "kselftest" / name,
                      _target_build(arch, src, hdrs, target, jobs, progress),
                      marker="tests.json", progress=progress)
    info = cache.load_json(out / "tests.json")
    return TargetBuild(target, out / "install", tuple(info["tests"]), dict(info["failed"]),
                       dict(info.get("helpers_failed", {})), out / "build.log")


def _pick(tb: TargetBuild, tests: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The selected tests of a target that built, and those that did not, with why."""
    wanted = list(tb.tests) + list(tb.failed) if tests is None else tests
    unknown = [t for t in wanted if t not in tb.tests and t not in tb.failed]
    if unknown:
        raise UserError(f"kselftest {tb.target} has no test {', '.join(unknown)}; it has: "
                        f"{', '.join([*tb.tests, *tb.failed])}")
    order = [*tb.tests, *tb.failed] if tests is None else tests
    return [t for t in order if t in tb.tests], {t: tb.failed[t] for t in order
                                                  if t in tb.failed}


def suite(kbuild: KernelBuild, specs: tuple[str, ...], progress: Progress = quiet,
          jobs: int = 2) -> SuiteBuild:
    """The guest files that run the selected kselftests on kbuild's guests."""
    arch = get_arch(kbuild.arch)
    src, source_id = _source(kbuild)
    chosen = parse_selection(specs)
    check_targets(src, list(chosen))
    if not chosen:
        raise UserError("kselftest: no TARGET given")
    files: list[GuestFile] = []
    lines: list[str] = []
    rows: list[str] = []
    failed: dict[str, str] = {}
    notes: list[str] = []
    for target, tests in chosen.items():
        tb = build_target(arch, src, source_id, target, progress, jobs)
        ok, bad = _pick(tb, tests)
        if (tb.install / target).is_dir():   # a target with nothing for this arch has none
            files.append(GuestFile(tb.install / target, f"{GUEST_ROOT}/{target}", arch.name))
        lines += [f"{target}:{t}" for t in ok]
        rows += [f"{target}.{t}" for t in ok]
        failed |= {f"{target}.{t}": f"build failed: {why}" for t, why in bad.items()}
        notes += [f"{target}/{p} (a helper, not a test) did not build: {why}"
                  for p, why in tb.helpers_failed.items()]
        runner = tb.install
        if not ok and not bad:
            notes.append(f"kselftest {target}: no tests for {arch.name}")
    files += [GuestFile(runner / "kselftest", f"{GUEST_ROOT}/kselftest", arch.name),
              GuestFile(runner / "run_kselftest.sh", f"{GUEST_ROOT}/run_kselftest.sh", arch.name)]
    return SuiteBuild(tuple(files), tuple(lines), tuple(rows), failed, tuple(notes))
