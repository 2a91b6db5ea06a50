"""x86_64: q35 booting the PVH vmlinux (no decompression under emulation). The
kernel console is the 16550 UART ttyS0 (early messages and a panic); the shell and the
forwarded /dev/kmsg are virtserialports of a virtio-serial-pci device (lossless, and
fast where a 16550 moves one byte per socket write). There is no free board UART for
a device under test. PTI is CONFIG_PAGE_TABLE_ISOLATION, forced on with pti=on
(TCG's CPU models report an AMD vendor). The firmware is qboot (qemu-system-data's
qboot.rom), which hands over to the kernel at once: SeaBIOS's POST took some 0.1 s
of every cold boot under TCG, for a kernel that reads no ACPI and no BIOS service."""

from lab.core.model import ArchProfile

PROFILE = ArchProfile(
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
    console_kind="serial",
    virtio_serial="virtio-serial-pci",
    cmdline=("console=ttyS0", "quiet", "panic=-1"),
    dut_uart=False,
    dump_paging=True,
    firmware="qboot.rom",
    kpti_option="PAGE_TABLE_ISOLATION",
    kpti_on="pti=on",
    kpti_off="pti=off",
    kpti_dmesg=r"Kernel/User page tables isolation: enabled",
    debian_arch="amd64",
    abis=(("x86_64", "gcc", ()), ("i386", "i686-linux-gnu-gcc", ())),
    kasan_image=("bzImage", "arch/x86/boot/bzImage"),
    qemu_package="qemu-system-x86",
    abi_packages=(("gcc", "libc6-dev", "/usr/lib/x86_64-linux-gnu/libc.a"),
                  ("gcc-i686-linux-gnu", "", "")),
)
