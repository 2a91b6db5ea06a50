"""The pytest plugin's fixtures, used as a lab user would."""

import pytest

pytestmark = pytest.mark.qemu


def test_default_guest(lab_guest):
    assert lab_guest.arch.name == "aarch64"
    assert lab_guest.run("uname -m").output.strip() == "aarch64"


@pytest.mark.parametrize("lab_guest", [{"arch": "x86_64", "kernel": "kpti",
                                        "cmdline": ["pti=on"]}], indirect=True)
def test_parametrized_guest(lab_guest):
    assert lab_guest.facts.kpti_active is True
    assert lab_guest.run("syscost 1000 2").output.count("METRIC getppid_ns") == 2
