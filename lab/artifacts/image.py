"""What goes into a guest beside the kernel: static guest tools, busybox,
in-tree and out-of-tree modules, and the initramfs that holds them.

The guest's /init is a link to the guest tools' binary, whose labconsole then runs
as PID 1 (images/tools/labconsole.c); the ready marker it says is built into it
from lab.core.model.READY_MARKER, so the marker the console waits for is spelt once.

Each of these cache entries records its artifacts (the tools, bin/busybox,
the .ko files, the initramfs) and is checked on every use (see cache); an
initramfs must also end with the cpio trailer, which catches a truncated one
even where a lab before manifests wrote it.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from lab.arches import get_arch
from lab.artifacts.kernel import cached_kernel, compiler_id, kernel_entries, kernel_meta, make_argv
from lab.core.errors import InfraError, UserError
from lab.core.model import READY_MARKER, ArchProfile, KernelBuild
from lab.core.paths import DRIVERS, IMAGES, cache_dir
from lab.host import cache, packages
from lab.host.cache import CorruptEntry
from lab.host.command import Progress, quiet, run

#: Deadline of each command, in seconds.
DEADLINE_S = {
    "tool": 300.0,             # one static guest tool
    "module": 600.0,           # one out-of-tree module directory
    "modules_install": 600.0,
    "depmod": 120.0,
    "unpack": 120.0,           # dpkg-deb -x of a guest package
}
ABI_FLAGS = ("-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-pie",
             "-no-pie", "-O2", "-Wall", "-Werror")
_DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root",
         "etc", "lib", "lib/modules", "mnt", "run", "opt")

#: The multi-call binary the tools of images/tools/ are linked into (images/labtools.c).
MULTI_TOOL = "labtools"
#: Flags of every guest tool. Stripped (-s): a static tool's symbols are 100 KB the
#: kernel unpacks at every boot (10 MB of initramfs took 0.25 s under TCG).
TOOL_FLAGS = ("-static", "-s", "-O2", "-Wall", "-Werror")


# ---------------------------------------------------------------- guest tools

def _tool_names() -> list[str]:
    return [src.stem for src in sorted((IMAGES / "tools").glob("*.c"))]


def build_tools(arch: ArchProfile, progress: Progress = quiet) -> dict[str, Path]:
    """The static guest tools, by the name the guest calls them: images/tools/*.c,
    all linked into one binary, MULTI_TOOL (each alone carried 600 KB of C library),
    and images/abi/syscall_abi.c built freestanding once per syscall ABI of the
    arch (abi-<name>: the 32-bit ones run on the 64-bit kernels)."""
    names = _tool_names()
    abis = [(f"abi-{name}", cc, (*ABI_FLAGS, *flags)) for name, cc, flags in arch.abis]
    key = cache.sha(f"recipe={cache.RECIPE}", *sorted({compiler_id(cc) for _, cc, _ in abis}),
                    compiler_id(arch.cc), cache.tree_hash(IMAGES / "tools"),
                    cache.sha((IMAGES / f"{MULTI_TOOL}.c").read_bytes()),
                    cache.tree_hash(IMAGES / "abi"), repr(arch.abis), READY_MARKER)
    files = [MULTI_TOOL, *(name for name, _, _ in abis)]
    # what labconsole says once the shell is up, as a C string
    ready = f"-DLAB_READY={json.dumps(READY_MARKER)}"

    def build(scratch: Path) -> None:
        scratch.mkdir()
        log = scratch / "build.log"
        compile_ = lambda what, argv: run(argv, phase=f"guest tool {what}",
                                          deadline=DEADLINE_S["tool"], log=log,
                                          progress=progress)
        objects = []
        for name in names:
            progress("guest tools", name)
            objects.append(scratch / f"{name}.o")
            compile_(name, [arch.cc, *TOOL_FLAGS, f"-Dmain=main_{name}", ready, "-c", "-o",
                            objects[-1], IMAGES / "tools" / f"{name}.c"])
        listing = " ".join(f"X({name})" for name in names)
        compile_(MULTI_TOOL, [arch.cc, *TOOL_FLAGS, f"-DLAB_TOOLS={listing}", ready, "-o",
                              scratch / MULTI_TOOL, IMAGES / f"{MULTI_TOOL}.c", *objects])
        for o in objects:
            o.unlink()
        for name, cc, flags in abis:
            progress("guest tools", name)
            compile_(name, [cc, *flags, "-o", scratch / name, IMAGES / "abi" / "syscall_abi.c"])

    out = cache.entry(cache_dir() / "tools" / f"{arch.name}-{key[:12]}", build, marker=".done",
                      record=lambda root: [root / name for name in files], progress=progress)
    return {**{name: out / MULTI_TOOL for name in names},
            **{name: out / name for name, _, _ in abis}}


#: The static binaries taken from Debian packages (lab.host.packages.GUEST_DEBS), by their
#: path in the guest: (package, path in the package).
GUEST_BINARIES = {
    "bin/busybox": ("busybox-static", "bin/busybox"),
    "bin/bash": ("bash-static", "bin/bash-static"),
}


def guest_binary(arch: ArchProfile, name: str, progress: Progress = quiet) -> Path:
    """A GUEST_BINARIES binary for arch, unpacked from its Debian package in the cache."""
    package, member = GUEST_BINARIES[name]
    deb = packages.require_guest_deb(package, arch.debian_arch)

    def unpack(scratch: Path) -> None:
        scratch.mkdir()
        run(["dpkg-deb", "-x", deb, scratch], phase=f"unpack {deb.name}",
            deadline=DEADLINE_S["unpack"])

    # The busybox entries keep their old name (the .deb's stem), so they stay valid.
    folder = "busybox" if package == "busybox-static" else "debs-unpacked"
    return cache.entry(cache_dir() / folder / deb.stem, unpack,
                       record=lambda root: [root / member], progress=progress) / member


#: Where busybox installs an applet, by its code in the binary (BB_DIR_*).
_APPLET_DIRS = ("", "bin/", "sbin/", "usr/bin/", "usr/sbin/")
#: Applets whose directory every busybox agrees on: a parse must place them so.
_APPLET_ANCHORS = {"sh": 1, "ls": 1, "mount": 1, "insmod": 2, "modprobe": 2, "env": 3,
                   "awk": 3, "chroot": 4}
#: How far from the applet names the table of their directories may be.
_APPLET_WINDOW = 64 * 1024


def busybox_links(binary: bytes) -> list[str]:
    """The paths `busybox --install` would link (bin/ls, usr/bin/env, ...), read from
    the binary itself, which may be another arch's; [] when it cannot be read
    with certainty (the guest's init then runs busybox --install itself).

    busybox keeps its applet names sorted and NUL-separated ("[", "[[", "acpid",
    ...), and their directories as codes 0-4, one per half byte (applet_install_loc).
    The table is found as the one run of such bytes near the names that places the
    anchor applets right, and no applet but linuxrc in the root directory. Made at
    boot, the links cost 30-100 ms under TCG.
    """
    start = binary.find(b"[\0[[\0")
    if start < 0:
        return []
    names: list[bytes] = []
    at = start
    while (end := binary.find(b"\0", at)) > at:
        name = binary[at:end]
        if names and name <= names[-1]:
            break
        names.append(name)
        at = end + 1
    index = {name.decode("latin-1"): i for i, name in enumerate(names)}
    if not set(_APPLET_ANCHORS) <= set(index):
        return []
    size = (len(names) + 1) // 2
    code = b"[\x00-\x04\x10-\x14\x20-\x24\x30-\x34\x40-\x44]"
    lo = max(0, start - _APPLET_WINDOW)
    window = binary[lo:start + _APPLET_WINDOW]
    found = []
    for m in re.finditer(b"(?=(" + code + b"{%d}))" % size, window):
        table = m.group(1)
        codes = [table[i // 2] >> (4 * (i % 2)) & 0xF for i in range(len(names))]
        # 0 (the root directory) is linuxrc's alone
        if all(codes[index[a]] == d for a, d in _APPLET_ANCHORS.items()) and all(
                (c == 0) == (name == b"linuxrc") for name, c in zip(names, codes, strict=True)):
            found.append(codes)
    if len({tuple(c) for c in found}) != 1:
        return []
    return [_APPLET_DIRS[c] + name.decode("latin-1")
            for name, c in zip(names, found[0], strict=True) if c]


# ---------------------------------------------------------------- modules

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


def kernel_tree(build: KernelBuild) -> Path:
    """The source tree a lab kernel was built from (Debian's, extracted into the
    cache, or the user's own): its scripts/ serve module builds and checks; a
    clear error if it or the kernel's build tree is gone (then nothing that
    needs it can be rebuilt)."""
    src = Path(kernel_meta(build)["source"])
    for tree, what, mark in ((src, "source tree", "Makefile"),
                             (build.build_dir, "build tree", ".config")):
        if not (tree / mark).is_file():
            raise InfraError(f"{tree}: the {what} of kernel {build.arch}/{build.kernel} is gone, "
                             f"so its modules cannot be built (remove {build.image.parent} "
                             "to rebuild the kernel)")
    return src


def _kernel_make(build: KernelBuild) -> list[str]:
    """make in the kernel's source and build tree, for module builds."""
    return make_argv(get_arch(build.arch), kernel_tree(build), build.build_dir)


def module_make(build: KernelBuild, copy: Path, *args: str) -> list[str]:
    """make for the out-of-tree module directory copy against a lab kernel: args
    are the target and variables (`modules`, `W=1 modules`, `coccicheck`)."""
    return [*_kernel_make(build), f"M={copy}", *args]


#: What an in-place build leaves in a module directory, and a git directory:
#: never copied, so each copy is built from its sources for the lab's kernel.
BUILD_PRODUCTS = ("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "modules.order",
                  "Module.symvers", ".tmp_versions", ".git", ".checkpatch-camelcase.*")


def copy_driver(driver: Path, copy: Path) -> Path:
    """A scratch copy of a module directory, without build products: kbuild writes
    into the directory it builds, and the user's stays clean."""
    shutil.copytree(driver, copy, ignore=shutil.ignore_patterns(*BUILD_PRODUCTS))
    return copy


def build_module(build: KernelBuild, driver: Path, progress: Progress = quiet) -> list[Path]:
    """An out-of-tree module directory built against a lab kernel (a copy, so the
    source tree stays clean); returns the .ko files."""
    key = cache.sha(f"recipe={cache.RECIPE}", build.hash, cache.tree_hash(driver))
    out = build.image.parent / "ext" / f"{driver.name}-{key[:12]}"

    def make(scratch: Path) -> None:
        copy_driver(driver, scratch)
        progress("module", driver.name)
        run(module_make(build, scratch, "modules"),
            phase=f"module {driver.name}", deadline=DEADLINE_S["module"],
            log=scratch / "build.log", progress=progress)

    cache.entry(out, make, marker=".done", lock=f"{build.hash[:12]}-{out.name}",
                record=lambda root: sorted(root.glob("*.ko")), progress=progress)
    return sorted(out.glob("*.ko"))


def _stage_modules(build: KernelBuild, stage: Path, modules: list[Path], log: Path,
                   progress: Progress) -> None:
    """In-tree modules (modules_install) plus every drivers/* module, then depmod."""
    run([*_kernel_make(build), f"INSTALL_MOD_PATH={stage}",
         "INSTALL_MOD_STRIP=1", "modules_install"], phase="modules_install",
        deadline=DEADLINE_S["modules_install"], log=log, progress=progress)
    mods = stage / "lib" / "modules" / build.release
    for link in ("build", "source"):
        (mods / link).unlink(missing_ok=True)
    extra = mods / "extra"
    for driver in modules:
        extra.mkdir(parents=True, exist_ok=True)
        for ko in build_module(build, driver, progress):
            shutil.copy2(ko, extra / ko.name)
    run(["depmod", "-b", stage, build.release], phase="depmod",
        deadline=DEADLINE_S["depmod"], log=log, progress=progress)


# ---------------------------------------------------------------- initramfs

class Cpio:
    """A newc-format cpio archive, written without root and without cpio(1): into
    out as it goes, or into memory (finish() then returns it)."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self._out: BinaryIO = out if out is not None else io.BytesIO()
        self._size = 0
        self._ino = 1

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._size += len(data)

    def _pad(self) -> None:
        self._write(b"\0" * (-self._size % 4))

    def _header(self, name: str, mode: int, size: int, rdev: tuple[int, int] = (0, 0)) -> None:
        if size >= 1 << 32:
            raise UserError(f"{name}: {size:,} bytes, over the 4 GiB a newc archive holds per file")
        fields = [self._ino, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self._ino += 1
        self._write(b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0")
        self._pad()

    def _entry(self, name: str, mode: int, data: bytes = b"",
               rdev: tuple[int, int] = (0, 0)) -> None:
        self._header(name, mode, len(data), rdev)
        self._write(data)
        self._pad()

    def dir(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, 0o040000 | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def copy(self, name: str, fh: BinaryIO, size: int, mode: int = 0o644) -> None:
        """A file of size bytes read from fh, in pieces (it may be larger than memory)."""
        self._header(name, 0o100000 | mode, size)
        left = size
        while left:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                raise UserError(f"{name}: the file shrank while it was added to the archive")
            self._write(chunk)
            left -= len(chunk)
        self._pad()

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
        """Ends the archive; the archive itself if it was written into memory."""
        self._entry("TRAILER!!!", 0)
        return self._out.getvalue() if isinstance(self._out, io.BytesIO) else b""


def _pack(build: KernelBuild, name: str, binaries: dict[str, Path],
          tools: dict[str, Path], modules: list[Path], progress: Progress
          ) -> Callable[[Path], None]:
    def pack(scratch: Path) -> None:
        progress("initramfs", name)
        cpio = Cpio()
        for d in _DIRS:
            cpio.dir(d)
        cpio.chardev("dev/console", 5, 1)
        cpio.chardev("dev/kmsg", 1, 11)   # init's stdio when the console is not up yet
        cpio.symlink("init", f"usr/bin/{tools['labconsole'].name}")
        for where, binary in binaries.items():
            cpio.file(where, binary.read_bytes(), 0o755)
        cpio.symlink("bin/sh", "busybox")
        for path in dict.fromkeys(tools.values()):    # each file once
            cpio.file(f"usr/bin/{path.name}", path.read_bytes(), 0o755)
        for tool, path in tools.items():
            if tool != path.name:
                cpio.symlink(f"usr/bin/{tool}", path.name)
        # busybox's links where a binary of the image is not, as --install makes them
        made = {*binaries, "bin/sh", *(f"usr/bin/{tool}" for tool in tools)}
        for link in busybox_links(binaries["bin/busybox"].read_bytes()):
            if link not in made:
                cpio.symlink(link, "/bin/busybox")
        with cache.workdir(build.image.parent / f"{cache.PARTIAL}stage-{name}") as work:
            stage = work / "stage"
            stage.mkdir()
            _stage_modules(build, stage, modules, work / "modules.log", progress)
            if (stage / "lib" / "modules").is_dir():
                cpio.tree("lib/modules", stage / "lib" / "modules")
        scratch.write_bytes(cpio.finish())
    return pack


#: How every newc archive starts, and the name of its last entry.
CPIO_MAGIC, CPIO_TRAILER = b"070701", b"TRAILER!!!"


def check_cpio(path: Path) -> None:
    """An initramfs's cache.Check: a newc archive, whole to its trailer."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(CPIO_MAGIC))
            fh.seek(max(0, path.stat().st_size - 64))
            tail = fh.read().rstrip(b"\0")
    except OSError as exc:
        raise cache.unreadable(path, exc) from None
    if head != CPIO_MAGIC or not tail.endswith(CPIO_TRAILER):
        raise CorruptEntry(path, "not a whole newc cpio archive (truncated?)")


def verify_initramfs(image: Path) -> Path:
    """Check an initramfs as its next use would; CorruptEntry if it is corrupt.
    Reads only (one without a manifest passes if its cpio is whole)."""
    cache.verify(image, cache.itself, check_cpio)
    return image


def build_initramfs(build: KernelBuild, progress: Progress = quiet,
                    extra_drivers: tuple[Path, ...] = ()) -> KernelBuild:
    """The guest image for a kernel: busybox, bash, /init, guest tools and modules."""
    arch = get_arch(build.arch)
    tools = build_tools(arch, progress)
    binaries = {path: guest_binary(arch, path, progress) for path in GUEST_BINARIES}
    modules = drivers(extra_drivers)
    key = cache.sha(f"recipe={cache.RECIPE}", build.hash,
                    *(path + cache.sha(b.read_bytes()) for path, b in binaries.items()),
                    *tools, *(p.read_bytes() for p in dict.fromkeys(tools.values())),
                    *(d.name + cache.tree_hash(d) for d in modules))
    image = build.image.parent / f"initramfs-{key[:12]}.cpio"
    cache.entry(image, _pack(build, image.name, binaries, tools, modules, progress),
                lock=f"{build.hash[:12]}-initramfs", record=cache.itself, check=check_cpio,
                progress=progress)
    return replace(build, initramfs=image)


# ---------------------------------------------------------------- listing

def _newest_initramfs(kdir: Path, on_corrupt: Callable[[CorruptEntry], None]) -> Path | None:
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    for image in sorted(kdir.glob("initramfs-*.cpio"), key=mtime, reverse=True):
        try:
            return verify_initramfs(image)
        except CorruptEntry as bad:
            on_corrupt(bad)
    return None


def list_kernels(on_corrupt: Callable[[CorruptEntry], None] = lambda bad: None
                 ) -> list[KernelBuild]:
    """Every intact kernel build in the cache, with its newest intact initramfs.
    A corrupt kernel entry or initramfs is left out and passed to on_corrupt
    (its next use rebuilds it). Reads only: nothing is adopted or removed."""
    builds = []
    for kdir in kernel_entries():
        try:
            kbuild = cached_kernel(kdir)
        except CorruptEntry as bad:
            on_corrupt(bad)
            continue
        builds.append(replace(kbuild, initramfs=_newest_initramfs(kdir, on_corrupt)))
    return builds
