"""The build layer against the fake kernel tree (tests/fake/linux): the cache,
seeding, the .config verification and failing phases, in seconds, with no real
kernel, compiler or QEMU. A build stopped by its deadline or a signal is in
tests/process/test_build_interrupts.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab.arches import ARCHES
from lab.artifacts import build, image, kconfig, kernel
from lab.core.errors import BuildError, UserError
from lab.core.model import READY_MARKER
from tests.conftest import ROOT
from tests.fake.kernel import build_fake_kernel as build_kernel
from tests.fake.kernel import fake_variant as variant
from tests.unit.inprocess import lab

A64, X86 = ARCHES["aarch64"], ARCHES["x86_64"]


# ---------------------------------------------------------------- the cache

def test_a_kernel_is_built_once_then_found_in_the_cache(fake):
    phases: list[str] = []
    first = build_kernel(fake, progress=lambda phase, detail: phases.append(phase))
    assert {"configure", "verify", "compile"} <= set(phases) and phases[-1] == "done"
    assert first.release == "6.1.0-fake" and first.image.name == "Image"
    assert first.image.read_text().startswith("fake arm64 kernel 6.1.0-fake")
    assert "CONFIG_UNMAP_KERNEL_AT_EL0=y" in first.config.read_text().splitlines()
    meta = build.kernel_meta(first)
    assert meta["options"] == {"CONFIG_UNMAP_KERNEL_AT_EL0": "y"}
    assert meta["toolchain"] == "aarch64-linux-gnu-gcc (lab fake) 0.0"
    log = first.image.parent / "build.log"
    stamp = log.stat().st_mtime_ns

    again: list[str] = []
    assert build_kernel(fake, progress=lambda phase, detail: again.append(phase)) == first
    assert again == []                           # nothing ran, so nothing was reported
    assert log.stat().st_mtime_ns == stamp
    assert fake.entries() == [first.image.parent.name]
    assert [k.hash for k in build.list_kernels()] == [first.hash]


def test_ensure_kernel_packs_an_initramfs_with_the_ready_marker_and_the_modules(fake):
    kbuild = build.ensure_kernel("aarch64", "kpti", source=fake.src)
    data = kbuild.initramfs.read_bytes()
    assert READY_MARKER.encode() in data and b"@LAB_READY@" not in data
    for name in (b"lib/modules/6.1.0-fake/kernel/drivers/fake/fake.ko",
                 b"lib/modules/6.1.0-fake/extra/pl011_lab.ko",
                 b"lib/modules/6.1.0-fake/modules.dep", b"bin/busybox", b"usr/bin/abi-armv7"):
        assert name + b"\0" in data, name
    assert b"6.1.0-fake/build\0" not in data and b"6.1.0-fake/source\0" not in data
    calls: list[str] = []
    assert build.ensure_kernel(A64, variant(A64, "kpti"), source=fake.src,
                               progress=lambda phase, detail: calls.append(phase)) == kbuild
    assert calls == []


def test_the_guest_init_is_labconsole_built_with_the_one_ready_marker(fake):
    """/init links to the tools' one binary, whose labconsole runs as PID 1 and says
    the marker the lab waits for, built in from READY_MARKER (a build without it
    does not compile)."""
    tools = build.build_tools(A64)
    assert tools["labconsole"] == tools["timeout"] and tools["labconsole"].name == "labtools"
    made = tools["labconsole"].read_text()
    assert f"-DLAB_READY={json.dumps(READY_MARKER)}" in made
    source = (ROOT / "images" / "tools" / "labconsole.c").read_text()
    assert "lab_init(LAB_READY)" in source and "#error" in source
    assert READY_MARKER not in source.split("*/", 1)[1]    # the marker is spelt in Python only
    data = build.ensure_kernel("aarch64", "kpti", source=fake.src).initramfs.read_bytes()
    for link, target in ((b"init", b"usr/bin/labtools"), (b"usr/bin/timeout", b"labtools"),
                         (b"usr/bin/labconsole", b"labtools"), (b"bin/sh", b"busybox")):
        # a newc entry: header digits, the name, NUL padding, the target, padding or the next
        assert re.search(b"\\d" + link + b"\0+" + target + b"(\0|070701)", data), link


def test_each_variant_compiles_in_a_tree_that_stays_and_an_edit_recompiles_there(fake):
    kpti = build_kernel(fake, spec="kpti")
    nokpti = build_kernel(fake, spec="nokpti")
    trees = {build.kernel_meta(k)["build_tree"] for k in (kpti, nokpti)}
    assert len(trees) == 2 and all(Path(t).parent == fake.cache / "trees" for t in trees)
    assert "# CONFIG_UNMAP_KERNEL_AT_EL0 is not set" in nokpti.config.read_text()
    tree = Path(build.kernel_meta(kpti)["build_tree"])
    (fake.src / "Kconfig").write_text((fake.src / "Kconfig").read_text() + "# an edit\n")
    edited = build_kernel(fake, spec="kpti")
    assert edited.hash != kpti.hash and build.kernel_meta(edited)["build_tree"] == str(tree)
    history = (tree / "obj" / "compile.history").read_text().splitlines()
    assert len(history) == 2                     # the same tree built twice, never copied
    assert kpti.image.exists() and edited.image.exists()   # both results stay named


def test_a_new_variants_tree_starts_from_a_close_built_siblings(fake, monkeypatch):
    """kpti then nokpti: the nokpti tree starts as a copy of the kpti tree (its objects),
    with its own .config, so kbuild compiles only what the changed option touched."""
    kpti = build_kernel(fake, arch=X86, spec="kpti")
    nokpti = build_kernel(fake, arch=X86, spec="nokpti")
    mine, theirs = (Path(build.kernel_meta(k)["build_tree"]) for k in (nokpti, kpti))
    assert build.kernel_meta(nokpti)["seeded_from"] == theirs.name
    assert build.kernel_meta(kpti)["seeded_from"] is None
    assert "# CONFIG_PAGE_TABLE_ISOLATION is not set" in (mine / "obj" / ".config").read_text()
    assert "CONFIG_PAGE_TABLE_ISOLATION=y" in (theirs / "obj" / ".config").read_text()
    history = (mine / "obj" / "compile.history").read_text().splitlines()
    assert len(history) == 2                     # kpti's compile, copied, then its own


def test_a_sibling_whose_config_is_far_off_is_not_copied(fake, monkeypatch):
    monkeypatch.setattr(kernel, "SEED_MAX_OPTIONS", 0)
    build_kernel(fake, arch=X86, spec="kpti")
    nokpti = build_kernel(fake, arch=X86, spec="nokpti")
    assert build.kernel_meta(nokpti)["seeded_from"] is None
    tree = Path(build.kernel_meta(nokpti)["build_tree"])
    assert len((tree / "obj" / "compile.history").read_text().splitlines()) == 1


def test_an_unchanged_configuration_is_not_configured_again(fake):
    phases: list[str] = []
    build_kernel(fake, spec="kpti")
    (fake.src / "Kconfig").write_text((fake.src / "Kconfig").read_text() + "# an edit\n")
    build_kernel(fake, spec="kpti", progress=lambda phase, detail: phases.append(phase))
    assert "compile" in phases and "configure" not in phases


def test_the_recorded_tree_leaves_out_objects_and_keeps_what_module_builds_need(fake):
    k = build_kernel(fake, spec="kpti")
    tree = Path(build.kernel_meta(k)["build_tree"]) / "obj"
    (tree / "init").mkdir(exist_ok=True)
    (tree / "init" / "main.o").write_bytes(b"obj")
    (tree / "Kconfig").write_text((fake.src / "Kconfig").read_text())
    (fake.src / "Kconfig").write_text((fake.src / "Kconfig").read_text() + "# edit\n")
    again = build_kernel(fake, spec="kpti")
    assert (again.build_dir / ".config").is_file()
    assert not (again.build_dir / "init" / "main.o").exists()
    assert build.kernel_meta(again)["compiled"] == 1      # the fake says CC once per image


# ---------------------------------------------------------------- verification

def test_an_option_the_arch_does_not_have_fails_naming_its_fragment_line(fake):
    frag = fake.fragment("arm-only.config", "CONFIG_KALLSYMS=y", "CONFIG_UNMAP_KERNEL_AT_EL0=y")
    with pytest.raises(UserError) as err:
        build_kernel(fake, arch=X86, spec=frag)
    lines = str(err.value).splitlines()
    assert lines[:2] == [
        "kernel x86_64/arm-only: 1 requested option(s) did not take effect:",
        (f"  CONFIG_UNMAP_KERNEL_AT_EL0: requested y at {frag}:2, got not set "
         "(no such option on this arch, or its dependencies are not met)")]
    final = lines[2].removeprefix("final config: ")
    assert lines[2].startswith("final config: ") and "CONFIG_PVH=y" in Path(final).read_text()
    assert not any((fake.kernels / name / "meta.json").exists() for name in fake.entries())


def test_an_option_whose_dependency_is_off_fails_naming_where_it_was_asked(fake):
    frag = fake.fragment("no-menu.config", "# CONFIG_VIRTIO_MENU is not set")
    with pytest.raises(UserError) as err:
        build_kernel(fake, spec=frag)
    assert (f"  CONFIG_VIRTIO_MMIO: requested y at {fake.configs / 'aarch64.config'}:2, "
            "got not set (no such option") in str(err.value)


def test_lab_build_exits_2_naming_the_option_and_line(fake):
    frag = fake.fragment("arm-only.config", "CONFIG_UNMAP_KERNEL_AT_EL0=y")
    result = lab("build", "--arch", "x86_64", "--kernel", str(frag), "--kernel-src",
                 str(fake.src), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "CONFIG_UNMAP_KERNEL_AT_EL0: requested y" in result.stderr
    assert f"{frag}:1" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- failures

@pytest.mark.parametrize("target, phase", [
    ("tinyconfig", "configure"), ("olddefconfig", "olddefconfig"), ("Image", "compile"),
    ("modules", "compile"), ("kernelrelease", "kernelrelease")])
def test_a_failing_phase_raises_build_error_with_the_log_tail(fake, monkeypatch, target, phase):
    monkeypatch.setenv("FAIL", target)
    with pytest.raises(BuildError) as err:
        build_kernel(fake)
    text = str(err.value)
    assert text.startswith(f"{phase} failed (exit code 2): make -C {fake.src} ")
    assert f"error: fake {target} failed (FAIL={target})" in err.value.tail
    assert all(name.startswith(".partial-") for name in fake.entries())   # no entry
    if err.value.log:                            # kept for reading, until the next attempt
        assert f"error: fake {target} failed" in Path(err.value.log).read_text()
    monkeypatch.delenv("FAIL")
    kbuild = build_kernel(fake)
    assert fake.entries() == [kbuild.image.parent.name]


# ---------------------------------------------------------------- source and key

@pytest.mark.parametrize("command", [
    ["build", "--arch", "aarch64", "--kernel", "nokpti"],
    ["exec", "--arch", "aarch64", "--kernel", "nokpti", "--", "true"],
    ["shell", "--arch", "aarch64", "--kernel", "nokpti"],
    ["driver"],
])
def test_every_command_that_builds_takes_kernel_src_and_refuses_a_tree_that_is_not_one(
        tmp_path, command):
    result = lab(*command[:1], "--kernel-src", str(tmp_path), *command[1:])
    assert result.returncode == 2
    assert f"--kernel-src {tmp_path}: not a kernel source tree" in result.stderr
    assert "Traceback" not in result.stderr


def test_lab_kernel_src_in_the_environment_is_refused_the_same_way(tmp_path):
    result = lab("build", "--arch", "aarch64", "--kernel", "nokpti",
                 env={"LAB_KERNEL_SRC": str(tmp_path)})
    assert result.returncode == 2
    assert f"--kernel-src {tmp_path}: not a kernel source tree" in result.stderr
    result = lab("build", env={"LAB_KERNEL_SRC": str(tmp_path / "nope")})
    assert result.returncode == 2 and "not a kernel source tree" in result.stderr


def test_a_users_tree_is_named_by_its_files(fake):
    first = build.kernel_source(fake.src)
    assert first == (fake.src.resolve(), build.kernel_source(fake.src)[1])
    (fake.src / "Kconfig").write_text((fake.src / "Kconfig").read_text() + "config NEW\n")
    assert build.kernel_source(fake.src)[1] != first[1]


class TestCacheKey:
    """The kernel's cache key, over the real kernel-configs/ (fake compilers)."""

    source = "0" * 64

    @pytest.fixture(autouse=True)
    def real_configs(self, fake, monkeypatch):
        monkeypatch.setattr(kconfig, "KERNEL_CONFIGS", ROOT / "kernel-configs")

    def key(self, arch="aarch64", variant="kpti", source=None):
        a = ARCHES[arch]
        return build.kernel_key(a, kconfig.resolve_variant(a, variant), source or self.source)

    def test_stable_for_the_same_inputs(self):
        assert self.key() == self.key()

    @pytest.mark.parametrize("change", [{"arch": "x86_64"}, {"variant": "nokpti"},
                                        {"source": "1" * 64}])
    def test_changes_with_arch_variant_and_source(self, change):
        assert self.key(**change) != self.key()

    def test_changes_with_a_fragment_byte(self, tmp_path):
        a = ARCHES["aarch64"]
        frag = tmp_path / "v.config"
        frag.write_text("CONFIG_KALLSYMS_ALL=y\n")
        first = build.kernel_key(a, kconfig.resolve_variant(a, str(frag)), self.source)
        frag.write_text("CONFIG_KALLSYMS_ALL=n\n")
        assert build.kernel_key(a, kconfig.resolve_variant(a, str(frag)), self.source) != first

    def test_changes_with_the_toolchain(self, fake):
        first = self.key()
        gcc = fake.tmp / "bin" / "aarch64-linux-gnu-gcc"
        gcc.unlink()
        gcc.write_text("#!/bin/sh\necho 'aarch64-linux-gnu-gcc (lab fake) 0.1'\n")
        gcc.chmod(0o755)
        kernel.compiler_id.cache_clear()
        assert self.key() != first


@pytest.mark.parametrize("arch, built", [(X86, "arch/x86/boot/bzImage"),
                                         (A64, "arch/arm64/boot/Image")])
def test_a_kasan_kernel_boots_the_image_its_arch_names_for_kasan(fake, arch, built):
    """x86_64's PVH vmlinux runs KASAN-instrumented code before the shadow exists:
    such a kernel is built and booted as a bzImage; arm64's Image serves both."""
    k = build_kernel(fake, arch=arch, spec=fake.fragment("kasan.config", "CONFIG_KASAN=y"))
    meta = build.kernel_meta(k)
    assert (meta["image"], meta["image_path"]) == (Path(built).name, built)
    assert k.image.name == Path(built).name and k.image.read_text().startswith("fake ")
    plain = build_kernel(fake, arch=arch, spec="nokpti")
    assert plain.image.name == Path(arch.image_path).name


# ---------------------------------------------------------------- busybox's links

#: A busybox's applets and their directories (BB_DIR_*: 0 root, 1 bin, 2 sbin, 3
#: usr/bin, 4 usr/sbin), sorted as busybox keeps them.
APPLETS = [("[", 3), ("[[", 3), ("awk", 3), ("chroot", 4), ("env", 3), ("insmod", 2),
           ("linuxrc", 0), ("ls", 1), ("modprobe", 2), ("mount", 1), ("sh", 1)]


def dir_table(applets) -> bytes:
    """busybox's applet_install_loc: each applet's directory, two to a byte."""
    codes = [d for _, d in applets]
    return bytes(codes[i] | (codes[i + 1] << 4 if i + 1 < len(codes) else 0)
                 for i in range(0, len(codes), 2))


def busybox_like(applets=APPLETS, gap: int = 0, tables=None) -> bytes:
    """Bytes laid out as busybox's: code, the directory table, the names."""
    names = b"".join(n.encode() + b"\0" for n, _ in applets) + b"\0"
    tables = tables or [dir_table(applets)]
    return (b"\x7fELF" + b"\xff" * 300 + b"\xff".join(tables) + b"\xee" * gap + names
            + b"\xff" * 100)


def test_busybox_links_are_read_from_the_binary_as_install_would_make_them():
    assert image.busybox_links(busybox_like()) == [
        "usr/bin/[", "usr/bin/[[", "usr/bin/awk", "usr/sbin/chroot", "usr/bin/env",
        "sbin/insmod", "bin/ls", "sbin/modprobe", "bin/mount", "bin/sh"]   # not linuxrc


@pytest.mark.parametrize("why, data", [
    ("no applet names", b"\x7fELF" + b"\0" * 500),
    ("an anchor applet missing", busybox_like([a for a in APPLETS if a[0] != "env"])),
    ("an anchor in the wrong directory",
     busybox_like([(n, 1 if n == "chroot" else d) for n, d in APPLETS])),
    ("an applet in the root directory",
     busybox_like([(n, 0 if n == "[[" else d) for n, d in APPLETS])),
    ("the table too far from the names", busybox_like(gap=image._APPLET_WINDOW)),
    ("two tables that both fit", busybox_like(tables=[
        dir_table(APPLETS), dir_table([(n, 1 if n == "[" else d) for n, d in APPLETS])])),
])
def test_busybox_links_are_none_when_the_binary_cannot_be_read_with_certainty(why, data):
    """Then the image has no links, and labconsole's init runs busybox --install."""
    assert image.busybox_links(data) == [], why
