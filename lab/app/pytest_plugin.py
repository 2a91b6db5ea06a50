"""pytest fixtures for guest tests (registered through the pytest11 entry point).

    def test_uname(lab_guest):                 # aarch64/nokpti by default
        assert lab_guest.run("uname -m").output.strip() == "aarch64"

    @pytest.mark.parametrize("lab_guest", [{"arch": "x86_64", "kernel": "kpti",
                                            "cmdline": ["pti=on"]}], indirect=True)
    def test_pti(lab_guest):
        assert lab_guest.facts.kpti_active

    def test_two(lab_boot):                    # a factory: any number of guests
        a = lab_boot("aarch64", "kpti", cmdline=["kpti=1"])
        b = lab_boot("x86_64", "nokpti", memory_mb=512,
                     files=[GuestFile(Path("build/tests"), "/opt/tests")])   # lab.core.model

Each guest keeps its logs (console.log, qemu.log, qmp.log, reproduce.sh) in
the test's tmp_path, and is shut down when the test ends, however it ends.
Each guest is a fresh clone of a snapshot template of its kernel, initramfs,
command line and machine (lab/guest/snapshot.py; the first guest of each boots cold
to make it): a file one test writes is never in the next test's guest.
`restore=False` (lab_boot) or --lab-cold boots the kernel instead.
The defaults come from --lab-arch, --lab-kernel and --lab-memory (MiB);
--lab-kernel-src (default $LAB_KERNEL_SRC) builds your own kernel tree. files
are in the guest from boot, in its initramfs (as `lab exec --add` puts them).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from lab.artifacts import build
from lab.core import inputs
from lab.core.model import KernelBuild
from lab.guest.guest import Guest

_kernels: dict[tuple[str, str], KernelBuild] = {}
#: --lab-kernel-src, --lab-memory and --lab-cold, once pytest is configured.
_source: Path | None = None
_memory: int | None = None
_cold = False


def pytest_addoption(parser):
    group = parser.getgroup("lab")
    group.addoption("--lab-arch", default="aarch64", help="arch of lab_guest (default aarch64)")
    group.addoption("--lab-kernel", default="nokpti", help="kernel of lab_guest (default nokpti)")
    group.addoption("--lab-kernel-src", default=os.environ.get("LAB_KERNEL_SRC") or None,
                    metavar="DIR", help="build this kernel tree instead of Debian's "
                                        "linux-source (default $LAB_KERNEL_SRC)")
    group.addoption("--lab-memory", type=_memory_mb, default=None, metavar="MB",
                    help="guest memory in MiB (default: the arch's)")
    group.addoption("--lab-cold", action="store_true",
                    help="boot every guest; by default each test gets a fresh clone of a "
                         "snapshot template (made by one cold boot per kernel and command line)")


def _memory_mb(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if problem := inputs.range_problem(value, *inputs.MEMORY_MB):
        raise argparse.ArgumentTypeError(problem)
    return value


def pytest_configure(config):
    global _source, _memory, _cold
    value = config.getoption("--lab-kernel-src")
    _source = Path(value) if value else None
    _memory = config.getoption("--lab-memory")
    _cold = config.getoption("--lab-cold")


def lab_kernel(arch: str, kernel: str) -> KernelBuild:
    """A built kernel and initramfs (cached for the session, and on disk)."""
    key = (arch, kernel)
    if key not in _kernels:
        _kernels[key] = build.ensure_kernel(arch, kernel, source=_source)
    return _kernels[key]


@pytest.fixture
def lab_boot(tmp_path):
    """A factory that boots guests; every one is shut down at the end of the test."""
    guests: list[Guest] = []

    def boot(arch: str, kernel: str, cmdline=(), files=(), **kw) -> Guest:
        kw.setdefault("memory_mb", _memory)
        kw.setdefault("restore", not _cold)
        guest = Guest(build.with_files(lab_kernel(arch, kernel), tuple(files)), tuple(cmdline),
                      logdir=tmp_path / f"guest-{len(guests)}-{arch}-{kernel}", **kw)
        guests.append(guest)
        guest.__enter__()
        return guest

    yield boot
    for guest in guests:
        guest.close()


@pytest.fixture
def lab_guest(request, lab_boot) -> Guest:
    """One booted guest: request.param (indirect parametrization) or the defaults."""
    params = dict(getattr(request, "param", None) or {})
    arch = params.pop("arch", request.config.getoption("--lab-arch"))
    kernel = params.pop("kernel", request.config.getoption("--lab-kernel"))
    return lab_boot(arch, kernel, **params)
