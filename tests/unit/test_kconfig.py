"""Fragments: parsing, variants and verification against a final .config."""

from pathlib import Path

import pytest

from lab.arches import ARCHES
from lab.artifacts import kconfig
from lab.core.errors import UserError

A64, X86 = ARCHES["aarch64"], ARCHES["x86_64"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_fragment_reads_set_and_unset_lines_with_their_line_numbers(tmp_path):
    frag = write(tmp_path, "f.config", "# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\n"
                                       'CONFIG_LOCALVERSION="-text"\nCONFIG_D=0x10\n')
    reqs = kconfig.parse_fragment(frag)
    assert [(r.name, r.value, r.line) for r in reqs] == [
        ("A", "y", 3), ("B", "n", 4), ("LOCALVERSION", '"-text"', 5), ("D", "0x10", 6)]


def test_a_line_that_is_not_kconfig_names_file_and_line(tmp_path):
    frag = write(tmp_path, "bad.config", "CONFIG_A=y\nUNMAP_KERNEL_AT_EL0=y\n")
    with pytest.raises(UserError, match=r"bad.config:2: not a Kconfig line"):
        kconfig.parse_fragment(frag)


def test_a_later_fragment_overrides_an_earlier_one(tmp_path):
    a = write(tmp_path, "a.config", "CONFIG_X=y\n")
    b = write(tmp_path, "b.config", "# CONFIG_X is not set\n")
    wanted = kconfig.effective_requests([a, b])
    assert wanted["X"].value == "n" and wanted["X"].source == b


def test_verify_accepts_what_took_effect_and_names_what_did_not(tmp_path):
    frag = write(tmp_path, "v.config",
                 "CONFIG_ON=y\n# CONFIG_OFF is not set\nCONFIG_GONE=n\n"
                 "CONFIG_VIRTIO_MMIO=y\nCONFIG_UNMAP_KERNEL_AT_EL0=y\n")
    final = write(tmp_path, ".config",
                  "CONFIG_ON=y\n# CONFIG_OFF is not set\n# CONFIG_VIRTIO_MMIO is not set\n")
    problems = kconfig.verify(kconfig.effective_requests([frag]), kconfig.parse_config(final))
    assert len(problems) == 2
    assert problems[0].startswith("CONFIG_VIRTIO_MMIO: requested y at ")
    assert "v.config:4, got not set" in problems[0]
    assert "CONFIG_UNMAP_KERNEL_AT_EL0: requested y" in problems[1]
    assert "no such option on this arch" in problems[1]


def test_variants_are_per_arch_and_unknown_ones_list_the_valid_ones():
    assert {"kpti", "nokpti"} <= set(kconfig.variant_names(A64))
    kpti = kconfig.resolve_variant(X86, "kpti")
    requested = kconfig.effective_requests(list(kpti.fragments))
    assert requested["PAGE_TABLE_ISOLATION"].value == "y"
    assert "UNMAP_KERNEL_AT_EL0" not in requested
    with pytest.raises(UserError, match=r"unknown kernel variant 'nope' for aarch64; "
                                        r"valid variants: .*kpti, nokpti"):
        kconfig.resolve_variant(A64, "nope")


def test_a_fragment_path_is_a_variant_of_its_own(tmp_path):
    frag = write(tmp_path, "mine.config", "CONFIG_KALLSYMS_ALL=y\n")
    variant = kconfig.resolve_variant(A64, str(frag))
    assert variant.name == "mine" and variant.fragments == (frag.resolve(),)
    with pytest.raises(UserError, match="no such file"):
        kconfig.resolve_variant(A64, str(tmp_path / "missing.config"))


@pytest.mark.parametrize("arch", [A64, X86])
def test_kpti_and_nokpti_differ_exactly_in_the_arch_kpti_option(arch):
    def requests(name):
        return kconfig.effective_requests(
            kconfig.fragments_for(arch, kconfig.resolve_variant(arch, name)))
    on, off = requests("kpti"), requests("nokpti")
    diff = {n for n in on.keys() | off.keys()
            if (on.get(n) and on[n].value) != (off.get(n) and off[n].value)}
    assert diff == {arch.kpti_option}
    assert on[arch.kpti_option].value == "y" and off[arch.kpti_option].value == "n"
