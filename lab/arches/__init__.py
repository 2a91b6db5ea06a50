"""One profile per guest architecture, as data."""

from lab.core.errors import UserError
from lab.core.model import ArchProfile

ARCHES: dict[str, ArchProfile] = {
    "aarch64": ArchProfile(
        name="aarch64",
        kernel_arch="arm64",
        cross_compile="aarch64-linux-gnu-",
        cc="aarch64-linux-gnu-gcc",
        image_target="Image",
        image_path="arch/arm64/boot/Image",
        qemu="qemu-system-aarch64",
        machine="virt",
        cpu="cortex-a72",
        kvm_cpu="host",
        memory_mb=512,
        console="hvc0",
        shell_console="hvc1",
        console_kind="virtconsole",
        cmdline=("console=hvc0", "quiet", "panic=-1"),
        dut_uart=True,
        kpti_option="UNMAP_KERNEL_AT_EL0",
        kpti_on="kpti=1",
        kpti_off="kpti=0",
        kpti_dmesg=r"CPU features: detected: Kernel page table isolation \(KPTI\)",
        debian_arch="arm64",
        abis=(("aarch64", "aarch64-linux-gnu-gcc", ()),
              ("armv7", "arm-linux-gnueabihf-gcc", ("-marm",))),
    ),
    "x86_64": ArchProfile(
        name="x86_64",
        kernel_arch="x86_64",
        cross_compile="",
        cc="gcc",
        image_target="vmlinux",
        image_path="vmlinux",
        qemu="qemu-system-x86_64",
        machine="q35",
        cpu="qemu64",
        kvm_cpu="host",
        memory_mb=512,
        console="ttyS0",
        shell_console="ttyS1",
        console_kind="serial",
        cmdline=("console=ttyS0", "quiet", "panic=-1"),
        dut_uart=False,
        kpti_option="PAGE_TABLE_ISOLATION",
        kpti_on="pti=on",
        kpti_off="pti=off",
        kpti_dmesg=r"Kernel/User page tables isolation: enabled",
        debian_arch="amd64",
        abis=(("x86_64", "gcc", ()), ("i386", "i686-linux-gnu-gcc", ())),
        kasan_image=("bzImage", "arch/x86/boot/bzImage"),
    ),
}


def get_arch(name: str) -> ArchProfile:
    try:
        return ARCHES[name]
    except KeyError:
        raise UserError(
            f"unknown arch {name!r}; valid arches: {', '.join(ARCHES)}"
        ) from None
