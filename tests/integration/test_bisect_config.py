"""lab bisect --config's dependencies, asked of kbuild (issue 26): an option that
Kconfig only offers with another moves with it, so no step asks for a value that
cannot take. The whole --config search is run by hand (docs/bisect.md): its steps
rebuild the objects KPTI touches, some 5 minutes each."""

from pathlib import Path

from lab.artifacts import build


def test_an_option_needs_what_kconfig_offers_it_with(tmp_path):
    kbuild = build.ensure_kernel("aarch64", "nokpti")
    values = {"CONFIG_HW_RANDOM": "y", "CONFIG_HW_RANDOM_VIRTIO": "y", "CONFIG_CRC4": "y",
              "CONFIG_UNMAP_KERNEL_AT_EL0": "y"}
    needs = build.option_needs(kbuild, values, Path(tmp_path / "scratch"))
    assert needs == {"CONFIG_HW_RANDOM": frozenset(),
                     "CONFIG_HW_RANDOM_VIRTIO": frozenset({"CONFIG_HW_RANDOM"}),
                     "CONFIG_CRC4": frozenset(), "CONFIG_UNMAP_KERNEL_AT_EL0": frozenset()}
