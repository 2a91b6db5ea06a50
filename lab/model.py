"""Frozen data the layers pass to each other. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: What a guest's /init prints on the shell console once the shell is ready.
#: The one spelling: images/init holds a placeholder that the initramfs builder
#: replaces with it, and the console waits for it.
READY_MARKER = "@@LAB-READY@@"


@dataclass(frozen=True)
class ArchProfile:
    """Everything arch-specific, as data (see lab.arches)."""

    name: str                 # lab's name: aarch64, x86_64
    kernel_arch: str          # make ARCH=
    cross_compile: str        # make CROSS_COMPILE= ("" for native)
    cc: str                   # C compiler for static guest tools
    cc_package: str           # Debian package that provides cc
    image_target: str         # make target for the boot image
    image_path: str           # the boot image, relative to the build dir
    qemu: str                 # QEMU binary
    qemu_package: str         # Debian package that provides it
    machine: str              # -M
    cpu: str                  # -cpu under TCG
    kvm_cpu: str              # -cpu under KVM
    memory_mb: int
    console: str              # kernel console (kernel messages only)
    shell_console: str        # the lab's shell runs here
    console_kind: str         # "virtconsole" or "serial"
    cmdline: tuple[str, ...]  # base kernel command line
    dut_uart: bool            # the board's UART is free as device under test
    kpti_option: str          # the Kconfig option of KPTI
    kpti_on: str              # command-line word that forces KPTI on
    kpti_off: str             # command-line word that forces KPTI off
    kpti_dmesg: str           # regex of the kernel log line that says KPTI is in use
    debian_arch: str          # dpkg architecture, for busybox-static
    #: The syscall ABIs this arch's kernels run: (name, C compiler, extra flags);
    #: images/abi/syscall_abi.c is built once per ABI.
    abis: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class KernelVariant:
    """A named set of Kconfig fragments layered over base + arch."""

    name: str
    fragments: tuple[Path, ...]


@dataclass(frozen=True)
class KconfigRequest:
    """One line of a fragment: CONFIG_<name> should end up <value>."""

    name: str       # without the CONFIG_ prefix
    value: str      # "y", "m", "n", a number or a quoted string
    source: Path
    line: int


@dataclass(frozen=True)
class KernelBuild:
    """A built kernel and the paths a guest needs."""

    arch: str
    kernel: str       # variant name
    hash: str
    image: Path
    config: Path
    build_dir: Path   # the O= tree, for out-of-tree modules
    release: str      # kernel release (uname -r)
    initramfs: Path | None = None

    def to_json(self) -> dict:
        return {
            "arch": self.arch,
            "kernel": self.kernel,
            "hash": self.hash,
            "image": str(self.image),
            "config": str(self.config),
            "build_dir": str(self.build_dir),
            "release": self.release,
            "initramfs": str(self.initramfs) if self.initramfs else None,
        }


@dataclass(frozen=True)
class BootFacts:
    """What the lab knows about a booted guest."""

    kernel_release: str
    accel: str
    cmdline: str
    boot_s: float
    kpti_active: bool | None   # None: the kernel log says nothing either way

    def to_json(self) -> dict:
        return {
            "kernel_release": self.kernel_release,
            "accel": self.accel,
            "cmdline": self.cmdline,
            "boot_s": round(self.boot_s, 3),
            "kpti_active": self.kpti_active,
        }


@dataclass(frozen=True)
class KernelMessage:
    """A kernel fault seen on the console."""

    kind: str        # panic, oops, bug, warning, ...
    fatal: bool
    text: str        # the first line, and what followed it


@dataclass(frozen=True)
class CommandResult:
    command: str
    output: str
    exit_code: int
    duration_s: float
    faults: tuple[KernelMessage, ...] = field(default=())


# ---------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class Metric:
    """A number read from a step's output: every match of regex's first group."""

    name: str
    regex: str
    unit: str = ""


@dataclass(frozen=True)
class Step:
    """One step of a scenario. kind says which of the fields below apply."""

    kind: str                 # run, put, module, uart, qmp, hmp, assert
    name: str
    line: int
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    timeout: float | None = None
    allow_faults: bool = False
    # run
    command: str = ""
    expect_exit: int | None = 0       # None: any exit code
    match: str | None = None          # run, hmp, uart: regex that must match
    no_match: str | None = None
    metrics: tuple[Metric, ...] = ()
    # put
    src: str = ""
    dest: str = ""
    mode: int = 0o644
    # module
    load: str = ""
    unload: str = ""
    args: str = ""
    # uart
    send: str = ""
    device: str = ""                  # the guest's tty of the UART, for transfers
    transfer: str = ""                # "guest-to-host" or "host-to-guest"
    nbytes: int = 0
    count: int = 1
    metric_name: str = ""             # transfers: where the KiB/s samples go
    # qmp / hmp
    qmp_command: str = ""
    qmp_args: tuple[tuple[str, object], ...] = ()
    qmp_expect: tuple[tuple[str, object], ...] = ()
    hmp: str = ""
    # assert
    fact: str = ""
    metric: str = ""
    equals: object = None
    ratio_to: str = ""                # assert: median(metric) / median(ratio_to)
    equals_metric: str = ""           # assert: median(metric) == median(equals_metric)
    min: float | None = None
    max: float | None = None

    def applies(self, cell: "Cell") -> bool:
        values = {"arch": cell.arch, "kernel": cell.kernel, "cmdline": cell.cmdline}
        return all(values[key] in allowed for key, allowed in self.when)


@dataclass(frozen=True)
class Cell:
    """One point of a scenario's matrix."""

    arch: str
    kernel: str
    cmdline: str                  # the name of the command-line set
    cmdline_words: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.kernel}-{self.cmdline}"

    def key(self) -> dict[str, str]:
        return {"arch": self.arch, "kernel": self.kernel, "cmdline": self.cmdline}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    path: Path
    cells: tuple[Cell, ...]
    steps: tuple[Step, ...]
    repeat: int = 1
    boot_timeout: float = 60.0
    step_timeout: float = 60.0
    memory_mb: int | None = None
