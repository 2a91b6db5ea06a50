"""lab doctor --install: one apt-get install for everything, the guests' foreign
packages downloaded, and a foreign dpkg arch added only where it is foreign."""

import os

import pytest

from lab.host import install, packages


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """dpkg and apt-get that log their arguments; dpkg says the host is amd64."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name, extra in (("dpkg", '[ "$1" = --print-architecture ] && echo amd64\n'),
                        ("apt-get", "")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{extra}exit 0\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    return log


@pytest.mark.skipif(os.geteuid() != 0, reason="install() refuses to run without root")
def test_one_install_for_every_package_and_each_guest_arch_added_once(fake_apt):
    guests = [d for d in packages.DEPS if d.foreign]
    native = [d for d in packages.DEPS if d.package in ("make", "ocaml-nox")]
    install.install(native + guests)
    calls = fake_apt.read_text().splitlines()
    assert calls[0] == "dpkg --print-architecture"
    # every guest arch but the host's own is added as a foreign dpkg arch, once
    assert [c for c in calls if "--add-architecture" in c] == ["dpkg --add-architecture arm64"]
    (installed,) = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert installed.endswith("--no-install-recommends make ocaml-nox")
    (downloaded,) = [c for c in calls if " download " in c]
    assert all(d.package in downloaded for d in guests)
    assert {d.foreign for d in guests} == {"amd64", "arm64"}
