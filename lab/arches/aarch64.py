"""aarch64: QEMU's virt board with a Cortex-A72. The kernel console is a virtconsole
(hvc0: early messages and a panic); the shell and the forwarded /dev/kmsg are
virtserialports of the same virtio-serial device (lossless: QEMU throttles a port's
writer where it drops what a console cannot send). That leaves the board's PL011 free
as the device under test. KPTI is CONFIG_UNMAP_KERNEL_AT_EL0, forced on with kpti=1
(the emulated CPU is not Meltdown-affected)."""

from lab.core.model import ArchProfile

PROFILE = ArchProfile(
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
    console_kind="virtconsole",
    virtio_serial="virtio-serial-device",
    cmdline=("console=hvc0", "quiet", "panic=-1"),
    dut_uart=True,
    kpti_option="UNMAP_KERNEL_AT_EL0",
    kpti_on="kpti=1",
    kpti_off="kpti=0",
    kpti_dmesg=r"CPU features: detected: Kernel page table isolation \(KPTI\)",
    debian_arch="arm64",
    abis=(("aarch64", "aarch64-linux-gnu-gcc", ()),
          ("armv7", "arm-linux-gnueabihf-gcc", ("-marm",))),
    qemu_package="qemu-system-arm",
    abi_packages=(("gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross",
                   "/usr/aarch64-linux-gnu/lib/libc.a"),
                  ("gcc-arm-linux-gnueabihf", "", "")),
)
