"""Fragments that cannot take effect fail the build, naming the option (real Kconfig).

These run tinyconfig, merge_config.sh and olddefconfig on Debian's linux-source
6.1 (extracted, and the nearest cached build tree copied), so they need a
provisioned host; no kernel is compiled and nothing boots. The same checks
against the fake kernel tree are in tests/unit/test_build.py.
"""

import pytest

from tests.conftest import lab

pytestmark = pytest.mark.host


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
