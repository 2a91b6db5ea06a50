"""Host tools the lab needs, the Debian package that provides each, and the probe
that proves each works (run by lab.host.install). Data and lookups only: proc
reads this module to name the package of a command that is missing."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.arches import ARCHES
from lab.core.errors import UserError
from lab.core.model import ArchProfile
from lab.core.paths import cache_dir

#: progress(phase, detail), as the build layer reports it.
Progress = Callable[[str, str], None]

KERNEL_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
#: What spatch loads to run a semantic patch's Python scripts, and its package.
PYTHON_LIBRARY = "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0"
PYTHON_LIBRARY_PACKAGE = "libpython3.11"
#: The Debian arches of the guests, whose static userland is downloaded, not installed.
GUEST_ARCHES = tuple(a.debian_arch for a in ARCHES.values())
#: Debian packages whose static binaries go into every guest image (see build.image).
GUEST_DEBS = ("busybox-static", "bash-static")


@dataclass(frozen=True)
class Probe:
    """The tool run as the lab runs it, on a tiny input: argv (each word formatted
    with {dir}, a scratch directory holding `files`), which must exit 0 in seconds."""

    argv: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()
    #: The kernel source's scripts/ must be there ({src}: the extracted tree).
    kernel_source: bool = False
    #: Text the output must hold (some tools exit 0 after a failure they print).
    expect: str = ""


@dataclass(frozen=True)
class Dep:
    what: str          # what the lab needs, as a user would name it
    package: str       # the Debian package
    command: str = ""  # an executable on PATH, or
    path: str = ""     # a file that must exist
    foreign: str = ""  # a dpkg arch: the package is downloaded, not installed
    probe: Probe | None = None   # lab doctor --strict runs it

    def found(self) -> bool:
        if self.foreign:
            return guest_deb(self.package.split(":")[0], self.foreign) is not None
        if self.command:
            return shutil.which(self.command) is not None
        return Path(self.path).exists()


_HELLO = (("hello.c", "#include <stdio.h>\nint main(void) { return puts(\"hi\") < 0; }\n"),)


def _static_cc(cc: str, *flags: str) -> Probe:
    """A static hello built as the guest tools are (build.image)."""
    return Probe((cc, "-static", "-Os", *flags, "-o", "{dir}/hello", "{dir}/hello.c"), _HELLO)


def _freestanding_cc(cc: str, *flags: str) -> Probe:
    """A freestanding static program, as the syscall-ABI tools are built (build.image)."""
    return Probe((cc, "-static", "-nostdlib", "-ffreestanding", "-fno-pie", "-no-pie", "-O2",
                  *flags, "-o", "{dir}/start", "{dir}/start.c"),
                 (("start.c", "void _start(void) { for (;;) ; }\n"),))


def _version(command: str, flag: str = "--version") -> Probe:
    return Probe((command, flag))


#: The host side of a kernel build: libelf (objtool, resolve_btfids) and libcrypto
#: (sign-file, extract-cert), compiled and linked as kbuild's host programs are.
_HOSTPROGS = Probe(("gcc", "-o", "{dir}/host", "{dir}/host.c", "-lelf", "-lcrypto"), (
    ("host.c", "#include <libelf.h>\n#include <openssl/evp.h>\n"
               "int main(void) { return elf_version(EV_CURRENT) == EV_NONE "
               "|| !EVP_sha256(); }\n"),))
def _spatch(language: str, body: str) -> Probe:
    """spatch with a script rule in language that prints lab-probe-f."""
    return Probe(("spatch", "--very-quiet", "--sp-file", "{dir}/probe.cocci", "{dir}/t.c"), (
        ("probe.cocci", "@r@\nidentifier f;\n@@\nf(...) { ... }\n\n"
                        f"@script:{language}@\nf << r.f;\n@@\n{body}\n"),
        ("t.c", "int f(void) { return 0; }\n")), expect="lab-probe-f")


#: coccicheck's semantic patches include OCaml scripts, which spatch compiles with
#: ocamlfind ocamlopt (Debian's coccinelle does not depend on ocaml-nox), and Python
#: scripts, for which spatch loads libpython (nor does it depend on that; spatch then
#: prints "Py.find_library: unable to find the Python library" and exits 0).
_SPATCH_OCAML = _spatch("ocaml", 'print_endline ("lab-probe-" ^ f)')
_SPATCH_PYTHON = _spatch("python", 'print("lab-probe-" + f)')
#: gdb-multiarch knows both guest arches, and runs Python (the kernel's gdb scripts).
_GDB = Probe(("gdb-multiarch", "-nx", "-batch", "-ex", "set architecture aarch64",
              "-ex", "set architecture i386:x86-64", "-ex", "python print('lab-probe')"),
             expect="lab-probe")
_SPARSE = Probe(("sparse", "-Wsparse-error", "{dir}/t.c"), (("t.c", "int f(void);\n"),))
_CHECKPATCH = Probe(("perl", "{src}/scripts/checkpatch.pl", "--strict", "--no-tree", "-f",
                     "{dir}/t.c"), (("t.c", "// SPDX-License-Identifier: GPL-2.0\n"
                                            "static int lab_probe;\n"),), kernel_source=True)
#: report.html's browser tests drive Debian's chromium headless through Debian's
#: chromedriver (tests/browser.py). As root Chromium starts only with --no-sandbox.
#: The page comes from a data: URL whose text is percent-encoded, so the DOM holds
#: "lab-probe" only if the browser really parsed it (an error echoing the URL does not).
_CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")
_CHROMIUM = Probe(("chromium", *_CHROMIUM_ARGS, "--dump-dom", "data:text/html,<b>lab-%70robe</b>"),
                  expect="<b>lab-probe</b>")
#: chromedriver started, a W3C WebDriver session of headless chromium opened over its
#: HTTP API (the standard library's urllib: Selenium is a test dependency, not the lab's),
#: the page loaded and read back through the DOM, the session closed.
_WEBDRIVER_SCRIPT = f"""\
import json, socket, subprocess, time, urllib.error, urllib.request
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
driver = subprocess.Popen(["chromedriver", f"--port={{port}}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{{port}}{{path}}", data=data, method=method,
                                 headers={{"Content-Type": "application/json"}})
    try:
        with urllib.request.urlopen(req, timeout=20) as answer:
            return json.load(answer)["value"]
    except urllib.error.HTTPError as exc:   # chromedriver says why in its body
        raise SystemExit(f"chromedriver: {{method}} {{path}}: {{exc.read().decode()[:600]}}")
try:
    try:
        socket.gethostbyname("localhost")
    except OSError:   # chromedriver reaches its browser at localhost
        raise SystemExit("'localhost' does not resolve: add '127.0.0.1 localhost' to /etc/hosts")
    for _ in range(100):
        try:
            call("GET", "/status")
            break
        except OSError:
            time.sleep(0.1)
    options = {{"binary": "/usr/bin/chromium", "args": {list(_CHROMIUM_ARGS)!r}}}
    session = call("POST", "/session", {{"capabilities": {{"alwaysMatch": {{
        "browserName": "chrome", "goog:chromeOptions": options}}}}}})["sessionId"]
    try:
        page = "data:text/html,<b id=p>lab-%70robe</b>"
        call("POST", f"/session/{{session}}/url", {{"url": page}})
        print(call("POST", f"/session/{{session}}/execute/sync",
                   {{"script": "return document.getElementById('p').textContent", "args": []}}))
    finally:
        call("DELETE", f"/session/{{session}}")
finally:
    driver.kill()
"""
_WEBDRIVER = Probe((sys.executable, "{dir}/webdriver.py"), (("webdriver.py", _WEBDRIVER_SCRIPT),),
                   expect="lab-probe")


def _qemu_probe(arch: ArchProfile) -> Probe:
    """A board with a device tree (virt) is built with the arch's CPU and virtio
    consoles, its tree written, and QEMU exits; another board's QEMU prints its
    version (x86_64: lab doctor's accelerator probe boots a real guest)."""
    if arch.machine != "virt":
        return _version(arch.qemu)
    return Probe((arch.qemu, "-machine", "virt,dumpdtb={dir}/virt.dtb", "-cpu", arch.cpu,
                  "-nodefaults", "-display", "none",
                  "-device", "virtio-serial-device", "-device", "virtconsole"))


def _arch_deps(arch: ArchProfile) -> tuple[Dep, ...]:
    """What an arch's guests need on the host, from its profile: QEMU, and per ABI a
    compiler with a static C library, or a freestanding one."""
    deps = [Dep(f"QEMU for {arch.name}", arch.qemu_package, command=arch.qemu,
                probe=_qemu_probe(arch))]
    for (abi, cc, flags), (cc_package, libc_package, libc) in zip(arch.abis,
                                                                   arch.abi_packages,
                                                                   strict=True):
        if libc_package:
            deps += [Dep(f"{abi} C compiler", cc_package, command=cc, probe=_version(cc)),
                     Dep(f"{abi} C library (static)", libc_package, path=libc,
                         probe=_static_cc(cc, *flags))]
        else:
            deps.append(Dep(f"{abi} C compiler (freestanding)", cc_package, command=cc,
                            probe=_freestanding_cc(cc, *flags)))
    return tuple(deps)


DEPS: tuple[Dep, ...] = (
    *(dep for arch in ARCHES.values() for dep in _arch_deps(arch)),
    Dep("C compiler (kbuild's host programs)", "gcc", command="gcc", probe=_version("gcc")),
    Dep("make", "make", command="make", probe=_version("make")),
    Dep("kernel source 6.1", "linux-source-6.1", path=str(KERNEL_TARBALL)),
    Dep("xz", "xz-utils", command="xz", probe=_version("xz")),
    Dep("flex", "flex", command="flex", probe=_version("flex")),
    Dep("bison", "bison", command="bison", probe=_version("bison")),
    Dep("bc", "bc", command="bc", probe=_version("bc")),
    Dep("libelf headers", "libelf-dev", path="/usr/include/libelf.h", probe=_HOSTPROGS),
    Dep("OpenSSL headers", "libssl-dev", path="/usr/include/openssl/ssl.h", probe=_HOSTPROGS),
    Dep("cpio", "cpio", command="cpio", probe=_version("cpio")),
    Dep("depmod", "kmod", command="depmod", probe=_version("depmod")),
    Dep("perl", "perl", command="perl", probe=_CHECKPATCH),
    Dep("git (your own kernel tree's identity; bisect)", "git", command="git",
        probe=_version("git")),
    Dep("rsync (kselftest's make install)", "rsync", command="rsync", probe=_version("rsync")),
    Dep("sparse (lab driver --check)", "sparse", command="sparse", probe=_SPARSE),
    Dep("coccinelle (lab driver --check)", "coccinelle", command="spatch",
        probe=_version("spatch")),
    Dep("OCaml compiler (coccicheck's OCaml scripts)", "ocaml-nox", command="ocamlopt",
        probe=_SPATCH_OCAML),
    Dep("Python library (coccicheck's Python scripts)", PYTHON_LIBRARY_PACKAGE,
        path=PYTHON_LIBRARY, probe=_SPATCH_PYTHON),
    Dep("lz4 (the x86_64 debug kernel's bzImage)", "lz4", command="lz4", probe=_version("lz4")),
    Dep("gdb for every guest arch (lab debug)", "gdb-multiarch", command="gdb-multiarch",
        probe=_GDB),
    Dep("fallocate (sparse vmcores)", "util-linux", command="fallocate",
        probe=_version("fallocate")),
    Dep("Chromium (report.html's browser tests)", "chromium", command="chromium",
        probe=_CHROMIUM),
    Dep("ChromeDriver (report.html's browser tests)", "chromium-driver", command="chromedriver",
        probe=_WEBDRIVER),
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
