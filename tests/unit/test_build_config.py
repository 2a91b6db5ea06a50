"""Fragments that cannot take effect fail the build, naming the option (real Kconfig)."""

import pytest

from lab import build, kconfig
from lab.arches import ARCHES
from tests.conftest import lab


def test_an_option_x86_64_cannot_have_exits_2_and_names_it(tmp_path):
    frag = tmp_path / "arm-only.config"
    frag.write_text("CONFIG_UNMAP_KERNEL_AT_EL0=y\n")
    result = lab("build", "--arch", "x86_64", "--kernel", str(frag))
    assert result.returncode == 2, result.stderr
    assert "CONFIG_UNMAP_KERNEL_AT_EL0: requested y" in result.stderr
    assert f"{frag}:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_option_whose_dependency_is_missing_fails_too(tmp_path):
    """VIRTIO_MMIO=y is dropped without VIRTIO_MENU (here: forced off)."""
    frag = tmp_path / "no-menu.config"
    frag.write_text("# CONFIG_VIRTIO_MENU is not set\n")
    result = lab("build", "--arch", "aarch64", "--kernel", str(frag))
    assert result.returncode == 2, result.stderr
    assert "CONFIG_VIRTIO_MMIO: requested y" in result.stderr


class TestCacheKey:
    source = "0" * 64

    def key(self, arch="aarch64", variant="kpti", source=None):
        a = ARCHES[arch]
        return build.kernel_key(a, kconfig.resolve_variant(a, variant), source or self.source)

    def test_stable_for_the_same_inputs(self):
        assert self.key() == self.key()

    @pytest.mark.parametrize("change", [dict(arch="x86_64"), dict(variant="nokpti"),
                                        dict(source="1" * 64)])
    def test_changes_with_arch_variant_and_source(self, change):
        assert self.key(**change) != self.key()

    def test_changes_with_a_fragment_byte(self, tmp_path):
        a = ARCHES["aarch64"]
        frag = tmp_path / "v.config"
        frag.write_text("CONFIG_KALLSYMS_ALL=y\n")
        first = build.kernel_key(a, kconfig.resolve_variant(a, str(frag)), self.source)
        frag.write_text("CONFIG_KALLSYMS_ALL=n\n")
        assert build.kernel_key(a, kconfig.resolve_variant(a, str(frag)), self.source) != first


def test_a_failed_build_step_keeps_its_log_and_shows_the_tail(tmp_path):
    from lab.errors import BuildError
    log = tmp_path / "build.log"
    script = "for i in $(seq 1 100); do echo line $i; done; echo 'error: boom' >&2; exit 3"
    with pytest.raises(BuildError) as err:
        build._run(["sh", "-c", script], log, "compile", lambda phase, detail: None)
    text = str(err.value)
    assert "compile failed (exit code 3)" in text and f"full log: {log}" in text
    assert "error: boom" in text and "line 100" in text and "line 1\n" not in text
    assert "line 1\n" in log.read_text()


def test_a_kernel_tree_that_is_not_one_is_refused(tmp_path):
    result = lab("build", "--arch", "aarch64", "--kernel", "nokpti",
                 "--kernel-src", str(tmp_path))
    assert result.returncode == 2
    assert f"LAB_KERNEL_SRC={tmp_path}: not a kernel source tree" in result.stderr
