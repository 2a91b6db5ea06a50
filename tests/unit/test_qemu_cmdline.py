"""The QEMU command line is a pure function of the arch profile and the guest."""

from pathlib import Path

import pytest

from lab.arches import ARCHES
from lab.guest import monitor, qemu

RUN = Path("/tmp/lab-run-x")


def argv(arch, **kw):
    return qemu.command_line(ARCHES[arch], Path("/k/Image"), Path("/k/initramfs.cpio"),
                             "console=hvc0", RUN, **kw)


def pairs(args):
    return list(zip(args, args[1:], strict=False))


def test_guest_starts_paused_never_reboots_and_has_no_default_devices():
    for arch in ARCHES:
        args = argv(arch)
        assert {"-S", "-no-reboot", "-nodefaults", "-no-user-config"} <= set(args)
        assert ("-qmp", f"unix:{RUN}/qmp.sock,server=on,wait=off") in pairs(args)
        assert argv(arch) == args   # pure


SHELL_PORTS = [("-device", "virtserialport,chardev=shell,name=lab.shell"),
               ("-device", "virtserialport,chardev=kmsg,name=lab.kmsg")]


def test_aarch64_has_a_virtconsole_two_ports_and_leaves_the_pl011_to_the_dut_socket():
    args = argv("aarch64")
    assert ("-M", "virt") in pairs(args) and ("-cpu", "cortex-a72") in pairs(args)
    devices = [b for a, b in pairs(args) if a == "-device"]
    assert devices[:2] == ["virtio-serial-device,max_ports=3", "virtconsole,chardev=kernel"]
    assert all(port in pairs(args) for port in SHELL_PORTS)
    assert ("-serial", "chardev:dut") in pairs(args)
    assert f"socket,id=dut,path={RUN}/dut.sock,server=on,wait=off" in args


def test_x86_has_the_kernel_on_a_uart_two_ports_on_virtio_serial_pci_and_no_dut():
    args = argv("x86_64")
    assert [b for a, b in pairs(args) if a == "-serial"] == ["chardev:kernel"]
    assert ("-device", "virtio-serial-pci,max_ports=3") in pairs(args)
    assert all(port in pairs(args) for port in SHELL_PORTS)
    assert not any("dut" in a for a in args)
    # qboot, not SeaBIOS's POST (x86 only: the virt board boots the kernel itself)
    assert ("-bios", "qboot.rom") in pairs(args) and "-bios" not in argv("aarch64")


def test_accel_cpu_memory_and_icount():
    args = argv("x86_64", accel="kvm", memory_mb=1024, icount=True)
    assert ("-accel", "kvm") in pairs(args) and ("-cpu", "host") in pairs(args)
    assert ("-m", "1024") in pairs(args) and ("-icount", "shift=0") in pairs(args)
    assert ("-cpu", "qemu64") in pairs(argv("x86_64"))


def test_kernel_cmdline_keeps_user_words_last():
    line = qemu.kernel_cmdline(ARCHES["aarch64"], ("kpti=1",))
    assert line.split() == ["console=hvc0", "quiet", "panic=-1", "kpti=1"]


def test_qemu_runs_under_setpriv_and_the_prefix_stays_out_of_the_pure_command_line():
    args = argv("x86_64")
    assert args[0] == "qemu-system-x86_64"                   # command_line() has no prefix
    machine = qemu.Machine(args, RUN, Path("/logs"))         # builds argv only: no I/O
    assert machine.argv == args
    assert machine.full_argv == ["setpriv", "--pdeathsig=KILL", "--", *args]
    # tests/conftest.py lab_qemus() finds QEMU in the first 4 words, even before
    # setpriv has exec'd it.
    assert "qemu-system" in machine.full_argv[3]


@pytest.mark.parametrize("answer, error", [
    ("00007fffffffff00: Cannot access memory\r\n", True),      # QEMU 7.2's own words
    ("unknown command: 'info nosuch'\r\n", True),
    ("unknown register\r\nTry \"help p\" for more information\r\n", True),
    ("invalid char in format: 'z'\r\nTry \"help xp\" for more information\r\n", True),
    ("0000000009000030: 0x00000300\r\n", False),
    ("VM status: running\r\n", False),
])
def test_hmp_errors_are_told_from_answers(answer, error):
    assert bool(monitor.HMP_ERROR.search(answer)) is error


def test_a_restore_names_stand_ins_for_the_kernel_and_initramfs_in_its_run_directory(tmp_path):
    """QEMU reads both whole, and writes neither into RAM while a migration is incoming:
    an arm64 Image shrinks to its header, any other kernel stays, the initramfs empties."""
    image = tmp_path / "Image"
    image.write_bytes(b"\0" * 0x38 + b"ARM\x64" + b"\1" * 4 + b"text" * 100_000)
    vmlinux, initramfs = tmp_path / "vmlinux", tmp_path / "initramfs.cpio"
    vmlinux.write_bytes(b"\x7fELF" + b"\2" * 1000)
    initramfs.write_bytes(b"070701" * 1000)
    rundir = tmp_path / "run"
    rundir.mkdir()
    kernel, empty = qemu.restore_stand_ins(image, initramfs, rundir)
    assert kernel.parent == rundir and kernel.read_bytes() == image.read_bytes()[:64]
    assert empty.parent == rundir and set(empty.read_bytes()) == {0}
    assert qemu.restore_stand_ins(vmlinux, initramfs, rundir)[0] == vmlinux
