"""Kernel, module, guest-tool and initramfs builds, cached by content hash.

Layout of the cache (~/.cache/lab or $LAB_CACHE):

    src/linux-<id>/                         extracted kernel source
    kernels/<arch>-<variant>-<hash>/        one kernel build
        obj/                                the O= tree (kept for M= module builds)
        Image | vmlinux, config, build.log, meta.json
        initramfs-<hash>.cpio               guest images for this kernel
    tools/<arch>-<hash>/                    static guest tools
    debs/                                   busybox-static for each arch
    locks/                                  flock files

A build directory counts only once its meta.json exists; meta.json is written
last, so a build that died half-way is redone, never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from lab import hostdeps, kconfig
from lab.arches import get_arch
from lab.errors import BuildError, InfraError, UserError
from lab.model import ArchProfile, KernelBuild, KernelVariant
from lab.paths import DRIVERS, IMAGES, cache_dir

#: Bump when the build recipe changes, so old cache entries are not reused.
RECIPE = 1
BUILD_DEADLINE_S = 3600
REPRODUCIBLE_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 2026",
    "KBUILD_BUILD_USER": "lab",
    "KBUILD_BUILD_HOST": "lab",
    "LC_ALL": "C",
}

Progress = Callable[[str, str], None]


def _quiet(phase: str, detail: str) -> None:
    pass


def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def _tree_hash(root: Path) -> str:
    """Hash of every file under root: relative names, modes and contents."""
    parts: list[bytes | str] = []
    if root.exists():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            parts += [str(path.relative_to(root)), oct(path.stat().st_mode & 0o111),
                      path.read_bytes()]
    return _sha(*parts)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """An exclusive flock, so concurrent lab processes never corrupt the cache."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _run(cmd: list[str], log: Path, phase: str, progress: Progress,
         cwd: Path | None = None, env: dict | None = None,
         deadline_s: float = BUILD_DEADLINE_S) -> None:
    """Run one build command, appending its output to log; raise BuildError on failure."""
    tail: deque[str] = deque(maxlen=40)
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        try:
            proc = subprocess.Popen(
                cmd, cwd=cwd, env={**os.environ, **REPRODUCIBLE_ENV, **(env or {})},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                errors="replace", start_new_session=True,
            )
        except FileNotFoundError:
            hostdeps.require(cmd[0])
            raise
        end = time.monotonic() + deadline_s
        last = 0.0
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            tail.append(line)
            now = time.monotonic()
            if now - last > 0.2:
                progress(phase, line.strip())
                last = now
            if now > end:
                os.killpg(proc.pid, 9)
                break
        rc = proc.wait()
    if time.monotonic() > end:
        raise BuildError(f"{phase}: did not finish within {deadline_s:.0f} s",
                         str(log), "".join(tail))
    if rc != 0:
        raise BuildError(f"{phase} failed (exit code {rc}): {' '.join(cmd)}",
                         str(log), "".join(tail))


# ---------------------------------------------------------------- source

def _tarball_id(tarball: Path) -> str:
    """sha256 of the source tarball, remembered by size and mtime."""
    ids_file = cache_dir() / "src" / "ids.json"
    st = tarball.stat()
    stamp = f"{tarball}:{st.st_size}:{st.st_mtime_ns}"
    try:
        ids = json.loads(ids_file.read_text())
    except (OSError, ValueError):
        ids = {}
    if stamp not in ids:
        h = hashlib.sha256()
        with open(tarball, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        ids[stamp] = h.hexdigest()
        ids_file.parent.mkdir(parents=True, exist_ok=True)
        _write_json(ids_file, ids)
    return ids[stamp]


def _tree_id(src: Path) -> str:
    """Identity of a user's kernel tree: git state, or every file's mtime."""
    if (src / ".git").exists():
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=60).stdout
        diff = subprocess.run(["git", "-C", str(src), "diff", "HEAD"],
                              capture_output=True, timeout=300).stdout
        return _sha("git", head.strip(), diff)
    stamps = [f"{p}:{p.stat().st_mtime_ns}" for p in sorted(src.rglob("*")) if p.is_file()]
    return _sha("tree", str(src), *stamps)


def kernel_source(progress: Progress = _quiet) -> tuple[Path, str]:
    """The kernel source tree and its identity.

    $LAB_KERNEL_SRC names a user's tree; otherwise Debian's linux-source
    tarball is extracted once into the cache.
    """
    user = os.environ.get("LAB_KERNEL_SRC")
    if user:
        src = Path(user)
        if not (src / "Makefile").is_file() or not (src / "Kconfig").is_file():
            raise UserError(f"LAB_KERNEL_SRC={user}: not a kernel source tree")
        return src.resolve(), _tree_id(src)
    tarball = hostdeps.require_path(hostdeps.KERNEL_TARBALL)
    ident = _tarball_id(tarball)
    src = cache_dir() / "src" / f"linux-{ident[:12]}"
    if (src / ".lab-extracted").exists():
        return src, ident
    with _locked(f"src-{ident[:12]}"):
        if not (src / ".lab-extracted").exists():
            progress("extract", str(tarball))
            hostdeps.require("xz")
            tmp = Path(tempfile.mkdtemp(dir=src.parent, prefix=".extract-"))
            try:
                subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp)],
                               check=True, timeout=900)
                (top,) = tmp.iterdir()
                shutil.rmtree(src, ignore_errors=True)
                top.rename(src)
            except (subprocess.SubprocessError, ValueError) as exc:
                raise InfraError(f"cannot extract {tarball}: {exc}") from None
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            (src / ".lab-extracted").write_text(ident + "\n")
    return src, ident


def _toolchain_id(arch: ArchProfile) -> str:
    return _compiler_id(arch.cross_compile + "gcc")


def _make(arch: ArchProfile, src: Path, obj: Path) -> list[str]:
    hostdeps.require("make")
    cmd = ["make", "-C", str(src), f"O={obj}", f"ARCH={arch.kernel_arch}"]
    if arch.cross_compile:
        cmd.append(f"CROSS_COMPILE={arch.cross_compile}")
    return cmd


# ---------------------------------------------------------------- kernels

def kernel_key(arch: ArchProfile, variant: KernelVariant, source_id: str) -> str:
    frags = kconfig.fragments_for(arch, variant)
    return _sha(f"recipe={RECIPE}", f"source={source_id}", f"arch={arch.name}",
                f"toolchain={_toolchain_id(arch)}",
                *(p.read_bytes() for p in frags))


def _kernel_dirs() -> Path:
    return cache_dir() / "kernels"


def _from_meta(kdir: Path) -> KernelBuild:
    meta = json.loads((kdir / "meta.json").read_text())
    return KernelBuild(arch=meta["arch"], kernel=meta["kernel"], hash=meta["hash"],
                       image=kdir / meta["image"], config=kdir / "config",
                       build_dir=kdir / "obj", release=meta["release"])


def build_kernel(arch: ArchProfile, variant: KernelVariant,
                 progress: Progress = _quiet, jobs: int | None = None) -> KernelBuild:
    """The kernel for arch + variant, from the cache or built now."""
    src, source_id = kernel_source(progress)
    frags = kconfig.fragments_for(arch, variant)
    wanted = kconfig.effective_requests(frags)   # bad fragment lines fail here, early
    key = kernel_key(arch, variant, source_id)
    kdir = _kernel_dirs() / f"{arch.name}-{variant.name}-{key[:12]}"
    if (kdir / "meta.json").exists():
        return _from_meta(kdir)
    with _locked(kdir.name):
        if (kdir / "meta.json").exists():
            return _from_meta(kdir)
        shutil.rmtree(kdir, ignore_errors=True)
        obj = kdir / "obj"
        started = time.monotonic()
        toolchain = _toolchain_id(arch)
        seed = _nearest_build(arch, source_id, toolchain, wanted)
        if seed is not None:
            # kbuild tracks every option per object file: from a copy of the
            # nearest tree it rebuilds only what the changed options touch.
            progress("seed", f"from {seed.name}")
            kdir.mkdir(parents=True)
            subprocess.run(["cp", "-a", "--reflink=auto", str(seed / "obj"), str(obj)],
                           check=True, timeout=600)
        else:
            obj.mkdir(parents=True)
        log = kdir / "build.log"
        make = _make(arch, src, obj)
        progress("configure", "tinyconfig")
        _run([*make, "tinyconfig"], log, "configure", progress)
        _run([str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(obj),
              str(obj / ".config"), *map(str, frags)], log, "merge fragments", progress,
             cwd=src)
        _run([*make, "olddefconfig"], log, "olddefconfig", progress)
        progress("verify", ".config")
        final = kconfig.parse_config(obj / ".config")
        problems = kconfig.verify(wanted, final)
        if problems:
            raise UserError(
                f"kernel {arch.name}/{variant.name}: "
                f"{len(problems)} requested option(s) did not take effect:\n  "
                + "\n  ".join(problems) + f"\nfinal config: {obj / '.config'}")
        jobs = jobs or os.cpu_count() or 1
        _run([*make, f"-j{jobs}", arch.image_target, "modules"], log, "compile", progress)
        release = subprocess.run([*make, "-s", "kernelrelease"], capture_output=True,
                                 text=True, timeout=120).stdout.strip().splitlines()[-1]
        image = Path(arch.image_path).name
        shutil.copy2(obj / arch.image_path, kdir / image)
        shutil.copy2(obj / ".config", kdir / "config")
        _write_json(kdir / "meta.json", {
            "arch": arch.name, "kernel": variant.name, "hash": key, "image": image,
            "release": release, "source": str(src), "source_id": source_id,
            "fragments": [str(p) for p in frags],
            "options": kconfig.variant_options(wanted, variant, final),
            "toolchain": toolchain, "seeded_from": seed.name if seed else None,
            "build_s": round(time.monotonic() - started, 1),
        })
    progress("done", f"{arch.name}/{variant.name}")
    return _from_meta(kdir)


def _nearest_build(arch: ArchProfile, source_id: str, toolchain: str,
                   wanted: dict) -> Path | None:
    """The finished build of the same arch, source and toolchain whose .config
    differs least from what is wanted now."""
    best, best_score = None, None
    for meta_file in _kernel_dirs().glob(f"{arch.name}-*/meta.json"):
        meta = json.loads(meta_file.read_text())
        if meta.get("source_id") != source_id or meta.get("toolchain") != toolchain:
            continue
        have = kconfig.parse_config(meta_file.parent / "config")
        score = sum(have.get(name, "n") != req.value for name, req in wanted.items())
        if best_score is None or score < best_score:
            best, best_score = meta_file.parent, score
    return best


def kernel_meta(build: KernelBuild) -> dict:
    return json.loads((build.image.parent / "meta.json").read_text())


def list_kernels() -> list[KernelBuild]:
    """Every complete kernel build in the cache, with its newest initramfs."""
    builds = []
    for meta in sorted(_kernel_dirs().glob("*/meta.json")):
        build = _from_meta(meta.parent)
        images = sorted(meta.parent.glob("initramfs-*.cpio"), key=lambda p: p.stat().st_mtime)
        builds.append(replace(build, initramfs=images[-1] if images else None))
    return builds


# ---------------------------------------------------------------- guest side

ABI_FLAGS = ("-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-pie",
             "-no-pie", "-O2", "-Wall", "-Werror")


@functools.lru_cache(maxsize=None)
def _compiler_id(cc: str) -> str:
    """The compiler's first --version line (asked once per process)."""
    out = subprocess.run([hostdeps.require(cc), "--version"], capture_output=True, text=True,
                         timeout=60)
    return out.stdout.splitlines()[0] if out.stdout else cc


def build_tools(arch: ArchProfile, progress: Progress = _quiet) -> dict[str, Path]:
    """The static guest tools: images/tools/*.c built with the arch's C library,
    and images/abi/syscall_abi.c built freestanding once per syscall ABI of the
    arch (abi-<name>: the 32-bit ones run on the 64-bit kernels)."""
    jobs = [(src.stem, arch.cc, ["-static", "-O2", "-Wall", "-Werror"], src)
            for src in sorted((IMAGES / "tools").glob("*.c"))]
    jobs += [(f"abi-{name}", cc, [*ABI_FLAGS, *flags], IMAGES / "abi" / "syscall_abi.c")
             for name, cc, flags in arch.abis]
    key = _sha(f"recipe={RECIPE}", *sorted({_compiler_id(cc) for _, cc, _, _ in jobs}),
               _tree_hash(IMAGES / "tools"), _tree_hash(IMAGES / "abi"), repr(arch.abis))
    out = cache_dir() / "tools" / f"{arch.name}-{key[:12]}"
    if not (out / ".done").exists():
        with _locked(out.name):
            if not (out / ".done").exists():
                out.mkdir(parents=True, exist_ok=True)
                for name, cc, flags, src in jobs:
                    progress("guest tools", name)
                    _run([hostdeps.require(cc), *flags, "-o", str(out / name), str(src)],
                         out / "build.log", f"guest tool {name}", progress)
                (out / ".done").write_text("")
    return {name: out / name for name, _, _, _ in jobs}


def drivers(extra: tuple[Path, ...] = ()) -> list[Path]:
    """The module directories for guest images: drivers/*, then extra ones; an
    extra directory replaces a drivers/ one of the same name."""
    found = {d.name: d for d in sorted(DRIVERS.iterdir()) if (d / "Kbuild").is_file()} \
        if DRIVERS.is_dir() else {}
    for d in extra:
        if not (d / "Kbuild").is_file():
            raise UserError(f"{d}: not an out-of-tree module directory (no Kbuild file)")
        found[d.name] = d.resolve()
    return list(found.values())


def build_module(build: KernelBuild, driver: Path, progress: Progress = _quiet) -> list[Path]:
    """An out-of-tree module directory built against a lab kernel (a copy, so the
    source tree stays clean); returns the .ko files."""
    arch = get_arch(build.arch)
    key = _sha(f"recipe={RECIPE}", build.hash, _tree_hash(driver))
    out = build.image.parent / "ext" / f"{driver.name}-{key[:12]}"
    if not (out / ".done").exists():
        with _locked(f"{build.hash[:12]}-{out.name}"):
            if not (out / ".done").exists():
                shutil.rmtree(out, ignore_errors=True)
                shutil.copytree(driver, out)
                src = Path(kernel_meta(build)["source"])
                progress("module", driver.name)
                _run([*_make(arch, src, build.build_dir), f"M={out}", "modules"],
                     out / "build.log", f"module {driver.name}", progress)
                (out / ".done").write_text("")
    return sorted(out.glob("*.ko"))


def busybox(arch: ArchProfile) -> Path:
    """busybox-static for arch, unpacked from the Debian package in the cache."""
    deb = hostdeps.require_busybox_deb(arch.debian_arch)
    out = cache_dir() / "busybox" / deb.stem
    if not (out / "bin" / "busybox").exists():
        with _locked(f"busybox-{deb.stem}"):
            if not (out / "bin" / "busybox").exists():
                tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".busybox-"))
                try:
                    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True,
                                   timeout=120)
                    shutil.rmtree(out, ignore_errors=True)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    tmp.rename(out)
                except subprocess.SubprocessError as exc:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise InfraError(f"cannot unpack {deb}: {exc}") from None
    return out / "bin" / "busybox"


class Cpio:
    """A newc-format cpio archive, written without root and without cpio(1)."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"",
               rdev: tuple[int, int] = (0, 0)) -> None:
        fields = [self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]
        self._ino += 1
        self._out += b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out += name.encode() + b"\0"
        self._out += b"\0" * (-len(self._out) % 4)
        self._out += data
        self._out += b"\0" * (-len(self._out) % 4)

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def tree(self, prefix: str, root: Path) -> None:
        """Add root's contents under prefix; links to outside the tree are dropped."""
        for path in sorted(root.rglob("*")):
            name = f"{prefix}/{path.relative_to(root)}"
            if path.is_symlink():
                continue
            if path.is_dir():
                self.dir(name)
            else:
                self.file(name, path.read_bytes(), path.stat().st_mode & 0o777)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self._out)


def _stage_modules(build: KernelBuild, arch: ArchProfile, stage: Path, modules: list[Path],
                   progress: Progress) -> None:
    """In-tree modules (modules_install) plus every drivers/* module, then depmod."""
    src = Path(kernel_meta(build)["source"])
    log = stage.parent / "modules.log"
    _run([*_make(arch, src, build.build_dir), f"INSTALL_MOD_PATH={stage}",
          "INSTALL_MOD_STRIP=1", "modules_install"], log, "modules_install", progress)
    mods = stage / "lib" / "modules" / build.release
    for link in ("build", "source"):
        (mods / link).unlink(missing_ok=True)
    extra = mods / "extra"
    for driver in modules:
        extra.mkdir(parents=True, exist_ok=True)
        for ko in build_module(build, driver, progress):
            shutil.copy2(ko, extra / ko.name)
    _run([hostdeps.require("depmod"), "-b", str(stage), build.release], log, "depmod",
         progress)


def build_initramfs(build: KernelBuild, progress: Progress = _quiet,
                    extra_drivers: tuple[Path, ...] = ()) -> KernelBuild:
    """The guest image for a kernel: busybox, /init, guest tools and modules."""
    arch = get_arch(build.arch)
    tools = build_tools(arch, progress)
    bb = busybox(arch)
    modules = drivers(extra_drivers)
    key = _sha(f"recipe={RECIPE}", build.hash, bb.read_bytes(),
               (IMAGES / "init").read_bytes(),
               *(p.read_bytes() for p in tools.values()),
               *(d.name + _tree_hash(d) for d in modules))
    image = build.image.parent / f"initramfs-{key[:12]}.cpio"
    if image.exists():
        return replace(build, initramfs=image)
    with _locked(f"{build.hash[:12]}-initramfs"):
        if not image.exists():
            progress("initramfs", image.name)
            cpio = Cpio()
            for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys",
                      "tmp", "root", "etc", "lib", "lib/modules", "mnt"):
                cpio.dir(d)
            cpio.chardev("dev/console", 5, 1)
            cpio.file("init", (IMAGES / "init").read_bytes(), 0o755)
            cpio.file("bin/busybox", bb.read_bytes(), 0o755)
            cpio.symlink("bin/sh", "busybox")
            for name, path in tools.items():
                cpio.file(f"usr/bin/{name}", path.read_bytes(), 0o755)
            with tempfile.TemporaryDirectory(dir=build.image.parent) as tmp:
                stage = Path(tmp) / "stage"
                stage.mkdir()
                _stage_modules(build, arch, stage, modules, progress)
                if (stage / "lib" / "modules").is_dir():
                    cpio.tree("lib/modules", stage / "lib" / "modules")
            tmp_image = image.with_suffix(".tmp")
            tmp_image.write_bytes(cpio.finish())
            os.replace(tmp_image, image)
    return replace(build, initramfs=image)


def ensure(arch: ArchProfile, variant: KernelVariant, progress: Progress = _quiet,
           jobs: int | None = None, extra_drivers: tuple[Path, ...] = ()) -> KernelBuild:
    """A kernel and its initramfs, building only what is missing."""
    return build_initramfs(build_kernel(arch, variant, progress, jobs), progress,
                           extra_drivers)
