"""Frozen data the layers pass to each other. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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
    image_target: str         # make target for the boot image
    image_path: str           # the boot image, relative to the build dir
    qemu: str                 # QEMU binary
    machine: str              # -M
    cpu: str                  # -cpu under TCG
    kvm_cpu: str              # -cpu under KVM
    memory_mb: int
    console: str              # kernel console (kernel messages only)
    console_kind: str         # the kernel console's kind: "virtconsole" or "serial"
    #: QEMU's virtio-serial device (-device), which carries the kernel console when
    #: it is a virtconsole, and the shell's and the kernel log's virtserialports.
    virtio_serial: str
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
    #: (make target, path) of the image to boot when the kernel has KASAN, if not
    #: the usual one: x86_64's PVH entry runs instrumented code before KASAN's
    #: shadow exists and triple-faults, so a KASAN kernel boots as a bzImage.
    kasan_image: tuple[str, str] | None = None
    #: The Debian package of `qemu`.
    qemu_package: str = ""
    #: Per ABI (in the order of abis): the package of its C compiler, and the package
    #: and path of the static C library the guest tools link against ("", "": that
    #: ABI's programs are freestanding, images/abi/).
    abi_packages: tuple[tuple[str, str, str], ...] = ()
    #: Whether QEMU writes a guest's memory dump with its virtual addresses
    #: (dump-guest-memory's paging, which gdb needs to read a vmcore): QEMU 7.2 maps
    #: x86's page tables, not arm64's.
    dump_paging: bool = False
    #: The firmware QEMU runs before the kernel (-bios), when not the machine's own.
    firmware: str = ""


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
    source_path: str = ""   # the kernel tree it was built from
    source: str = ""        # what that tree was: git describe --dirty, or a tree hash
    #: The vmlinux with debug information of a +dbg kernel (None for any other).
    vmlinux: Path | None = None

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
            "source_path": self.source_path,
            "source": self.source,
        }


#: Timing modes: wall-clock time, or TCG's instruction counter (-icount shift=0),
#: which counts instructions, not time (results and notes say which).
WALLCLOCK, ICOUNT = "wallclock", "icount"


def timing(icount: bool) -> str:
    return ICOUNT if icount else WALLCLOCK


def accel_label(accel: str, icount: bool) -> str:
    """How a boot's facts name the accelerator: "tcg", "kvm", or "tcg icount"."""
    return f"{accel} {ICOUNT}" if icount else accel


def accel_name(label: str) -> str:
    """tcg or kvm, from a boot's label (accel_label's inverse; "" stays "")."""
    return label.split(" ")[0]


@dataclass(frozen=True)
class AccelStatus:
    """The accelerator the lab will use on this host, and why."""

    accel: str      # kvm or tcg
    kvm: bool       # KVM works here (the probe booted a guest), or LAB_ACCEL says so
    reason: str


@dataclass(frozen=True)
class HostFacts:
    """The host part of results.json: where a run's numbers come from."""

    accel_available: str = ""
    accel_reason: str = ""
    cpu: str = ""
    qemu: str = ""
    cores: int = 0
    #: The host's name ("" in results made before it was kept).
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"accel_available": self.accel_available, "accel_reason": self.accel_reason,
                "cpu": self.cpu, "qemu": self.qemu, "cores": self.cores, "name": self.name}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HostFacts:
        """What a results.json of any lab says (older ones may lack a key)."""
        return cls(str(d.get("accel_available", "")), str(d.get("accel_reason", "")),
                   str(d.get("cpu", "")), str(d.get("qemu", "")), int(d.get("cores", 0) or 0),
                   str(d.get("name", "")))


@dataclass(frozen=True)
class BootFacts:
    """What the lab knows about a booted guest."""

    kernel_release: str
    accel: str
    cmdline: str
    boot_s: float
    kpti_active: bool | None   # None: the kernel log says nothing either way
    #: "cold": the kernel booted; "restored": the guest came from a snapshot
    #: template (lab/guest/snapshot.py), and boot_s is the restore's time to its first
    #: command. Restored guests of one template are not independent boots.
    boot: str = "cold"
    #: The template's key, when restored from one.
    template: str = ""
    #: Why this guest booted as it did, when that needs saying (a template made, or
    #: one that failed and was deleted, or why none was made).
    note: str = ""

    def to_json(self) -> dict:
        return {
            "kernel_release": self.kernel_release,
            "accel": self.accel,
            "cmdline": self.cmdline,
            "boot_s": round(self.boot_s, 3),
            "kpti_active": self.kpti_active,
            "boot": self.boot,
            "template": self.template,
            "note": self.note,
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
    #: The file that holds the whole output: the one asked for, or a spill file
    #: when it outgrew the console's memory bound (then `output` is its head and
    #: a note that names this file).
    output_file: Path | None = None
    #: The command ended the lab's shell (`exit 3`): exit_code is the shell's exit
    #: status, and the next command runs in a new shell (cwd and variables reset).
    shell_reset: bool = False


# ---------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class GuestFile:
    """A host file or directory the guest finds at dest when it boots (lab exec --add,
    a scenario's files:). arch: only guests of this arch get it ("" every guest)."""

    src: Path
    dest: str
    arch: str = ""


#: The keys a cell is selected by (when:, exclude:, --only).
CELL_KEYS = ("arch", "kernel", "cmdline")


@dataclass(frozen=True)
class Metric:
    """A number read from a step's output: every match of regex's first group."""

    name: str
    regex: str
    unit: str = ""
    #: How reports render values: "" for plain numbers, "hex" for register values.
    format: str = ""


@dataclass(frozen=True)
class Selector:
    """"This cell matches": each named key takes one of its values. Empty matches all.

    One type serves a step's `when`, a matrix's `exclude` and `lab run --only`.
    """

    terms: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def matches(self, cell: Cell) -> bool:
        key = cell.key()
        return all(key[name] in allowed for name, allowed in self.terms)

    def __str__(self) -> str:
        return " ".join(f"{k}={','.join(v)}" for k, v in self.terms)


@dataclass(frozen=True)
class Cell:
    """One point of a scenario's matrix."""

    arch: str
    kernel: str                   # the kernel as the scenario names it
    cmdline: str                  # the name of the command-line set
    cmdline_words: tuple[str, ...]
    #: The kernel resolved for this arch (None only in cells built by hand in tests).
    variant: KernelVariant | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.kernel}-{self.cmdline}"

    def key(self) -> dict[str, str]:
        return {"arch": self.arch, "kernel": self.kernel, "cmdline": self.cmdline}


@dataclass(frozen=True, kw_only=True)
class Step:
    """What every step kind shares; each kind (lab/scenario/steps/) adds exactly its own fields."""

    #: The step's YAML key (run, put, module, uart, qmp, hmp, assert); set per kind.
    kind: ClassVar[str] = ""
    name: str
    line: int
    when: Selector = Selector()
    timeout: float | None = None
    allow_faults: bool = False

    def applies(self, cell: Cell) -> bool:
        return self.when.matches(cell)

    def defines(self) -> tuple[Metric, ...]:
        """The metrics this step records samples of."""
        return ()

    #: Whether the step drives the board's UART as the device under test (only an
    #: arch with a free one, ArchProfile.dut_uart, can run it).
    uses_dut_uart: ClassVar[bool] = False
    #: Whether guest_files builds anything (the runner shows progress only then).
    builds_files: ClassVar[bool] = False

    def guest_files(self, kbuild: KernelBuild, progress: Any) -> tuple[GuestFile, ...]:
        """What this step needs in the guest's image, built for kbuild (kselftest's
        programs); the runner adds them to the initramfs of every cell it runs in."""
        return ()

    def shown(self) -> tuple[str, str]:
        """(what it does, what it expects), one line each, as results and the report
        show them: a run step's shell command and "exit 0; output matches 'x'".
        Each kind says its own; "" where there is nothing to say."""
        return "", ""

    def execute(self, ctx: Any) -> list[str]:
        """Runs the step in a boot (ctx: lab.scenario.steps.base.Context); returns what went
        wrong, empty for a pass. Each kind in lab/scenario/steps/ implements it."""
        raise NotImplementedError(type(self).__name__)


@dataclass(frozen=True)
class Claim:
    """The claim from the seed articles that a scenario tests (docs/experiments.md)."""

    title: str
    quote: str = ""
    how: str = ""
    cannot: str = ""
    #: The metrics the docs show, in order (empty: every metric the steps define).
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompareSpec:
    """What a scenario asks `lab run` to compare once its cells ran (compare:), as
    `lab compare DIR --baseline KEY=VALUE` would: each cell against its baseline."""

    baseline: tuple[str, str]          # (KEY, VALUE), KEY one of CELL_KEYS
    #: The metrics to compare (empty: every metric the cells recorded).
    metrics: tuple[str, ...] = ()
    #: "equivalent" means the ratio's interval lies within ±margin.
    margin: float = 0.05

    def to_json(self) -> dict[str, Any]:
        return {"baseline": "=".join(self.baseline), "metrics": list(self.metrics),
                "margin": self.margin}


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
    #: A deadline for a whole cell, every boot of it (None: the sum of its parts).
    cell_timeout: float | None = None
    memory_mb: int | None = None
    claim: Claim | None = None
    #: Host files in every guest's initramfs (files:), and sysctls set at boot (sysctl:).
    files: tuple[GuestFile, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    #: The comparison `lab run` makes and prints at its end (None: none).
    compare: CompareSpec | None = None

    def metrics(self) -> dict[str, Metric]:
        """Every metric the steps define, by name, in the order they first appear."""
        found: dict[str, Metric] = {}
        for step in self.steps:
            for metric in step.defines():
                found.setdefault(metric.name, metric)
        return found
