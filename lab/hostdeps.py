"""Host tools the lab needs, and the Debian package that provides each."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab import proc
from lab.errors import UserError
from lab.paths import cache_dir

#: progress(phase, detail), as the build layer reports it.
Progress = Callable[[str, str], None]

KERNEL_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
#: The Debian arches of the guests, whose static userland is downloaded, not installed.
GUEST_ARCHES = ("amd64", "arm64")
#: Debian packages whose static binaries go into every guest image (see build.image).
GUEST_DEBS = ("busybox-static", "bash-static")


@dataclass(frozen=True)
class Dep:
    what: str          # what the lab needs, as a user would name it
    package: str       # the Debian package
    command: str = ""  # an executable on PATH, or
    path: str = ""     # a file that must exist
    foreign: str = ""  # a dpkg arch: the package is downloaded, not installed

    def found(self) -> bool:
        if self.foreign:
            return guest_deb(self.package.split(":")[0], self.foreign) is not None
        if self.command:
            return shutil.which(self.command) is not None
        return Path(self.path).exists()


DEPS: tuple[Dep, ...] = (
    Dep("QEMU for aarch64", "qemu-system-arm", command="qemu-system-aarch64"),
    Dep("QEMU for x86_64", "qemu-system-x86", command="qemu-system-x86_64"),
    Dep("C compiler", "gcc", command="gcc"),
    Dep("C library (static)", "libc6-dev", path="/usr/lib/x86_64-linux-gnu/libc.a"),
    Dep("make", "make", command="make"),
    Dep("aarch64 cross compiler", "gcc-aarch64-linux-gnu", command="aarch64-linux-gnu-gcc"),
    Dep("aarch64 C library", "libc6-dev-arm64-cross", path="/usr/aarch64-linux-gnu/lib/libc.a"),
    Dep("i686 cross compiler", "gcc-i686-linux-gnu", command="i686-linux-gnu-gcc"),
    Dep("Armv7 cross compiler", "gcc-arm-linux-gnueabihf", command="arm-linux-gnueabihf-gcc"),
    Dep("kernel source 6.1", "linux-source-6.1", path=str(KERNEL_TARBALL)),
    Dep("xz", "xz-utils", command="xz"),
    Dep("flex", "flex", command="flex"),
    Dep("bison", "bison", command="bison"),
    Dep("bc", "bc", command="bc"),
    Dep("libelf headers", "libelf-dev", path="/usr/include/libelf.h"),
    Dep("OpenSSL headers", "libssl-dev", path="/usr/include/openssl/ssl.h"),
    Dep("cpio", "cpio", command="cpio"),
    Dep("depmod", "kmod", command="depmod"),
    Dep("perl", "perl", command="perl"),
    Dep("git (your own kernel tree's identity; bisect)", "git", command="git"),
    Dep("ccache (rebuilds across variants)", "ccache", command="ccache"),
    Dep("rsync (kselftest's make install)", "rsync", command="rsync"),
    Dep("sparse (lab driver --check)", "sparse", command="sparse"),
    Dep("coccinelle (lab driver --check)", "coccinelle", command="spatch"),
    Dep("lz4 (the x86_64 debug kernel's bzImage)", "lz4", command="lz4"),
    *(Dep(f"{name} ({a})", f"{name}:{a}", foreign=a) for name in GUEST_DEBS for a in GUEST_ARCHES),
)


def require(command: str) -> str:
    """The path of a host command, or a user error naming its package."""
    found = shutil.which(command)
    if found:
        return found
    for dep in DEPS:
        if dep.command == command:
            raise UserError(
                f"{command} not found: install the Debian package {dep.package} "
                f"(apt-get install {dep.package}, or lab doctor --install)"
            )
    raise UserError(f"{command} not found on PATH")


def require_path(path: Path) -> Path:
    if path.exists():
        return path
    for dep in DEPS:
        if dep.path == str(path):
            raise UserError(
                f"{path} not found: install the Debian package {dep.package} "
                f"(apt-get install {dep.package}, or lab doctor --install)"
            )
    raise UserError(f"{path} not found")


def debs_dir() -> Path:
    return cache_dir() / "debs"


def guest_deb(package: str, debian_arch: str) -> Path | None:
    """The downloaded .deb of a guest package (GUEST_DEBS) for an arch, if any."""
    found = sorted(debs_dir().glob(f"{package}_*_{debian_arch}.deb"))
    return found[-1] if found else None


def require_guest_deb(package: str, debian_arch: str) -> Path:
    deb = guest_deb(package, debian_arch)
    if deb is None:
        raise UserError(
            f"{package} for {debian_arch} is missing from {debs_dir()}: run lab doctor "
            f"--install (it runs apt-get download {package}:{debian_arch})"
        )
    return deb


def missing() -> list[Dep]:
    return [dep for dep in DEPS if not dep.found()]


#: apt-get downloads and installs: generous, but bounded.
APT_DEADLINE_S = 1800.0
DPKG_DEADLINE_S = 120.0


def _apt(verb: str, *args: str, options: tuple[str, ...] = (),
         progress: Progress | None = None, cwd: Path | None = None) -> None:
    proc.run(["apt-get", *options, verb, *args], deadline=APT_DEADLINE_S, cwd=cwd,
             env={"DEBIAN_FRONTEND": "noninteractive"}, what=f"apt-get {verb}",
             progress=(lambda line: progress("apt-get " + verb, line)) if progress else None,
             keep_output=False)


def install(deps: list[Dep], progress: Progress | None = None) -> None:
    """Install missing packages with apt, and download the guests' static packages."""
    if not deps:
        return
    if os.geteuid() != 0:
        raise UserError("lab doctor --install must run as root (it calls apt-get)")
    if shutil.which("apt-get") is None:
        raise UserError("apt-get not found: lab doctor --install needs Debian")
    foreign = [d for d in deps if d.foreign]
    native = sorted({d.package for d in deps if not d.foreign})
    if foreign:
        proc.run(["dpkg", "--add-architecture", "arm64"], deadline=DPKG_DEADLINE_S)
    _apt("update", "-q", progress=progress)
    if native:
        _apt("install", "-y", "-q", "--no-install-recommends", *native, progress=progress)
    if foreign:
        debs_dir().mkdir(parents=True, exist_ok=True)
        # root downloads into the lab's cache, which apt's _apt user cannot write
        _apt("download", *(d.package for d in foreign), progress=progress, cwd=debs_dir(),
             options=("-o", "APT::Sandbox::User=root"))
