"""Snapshot templates: the command lines of a template and a clone, the RAM file's
digest, what results say of a restored boot, and the CLI's choice. The guests made
from templates, against the fake QEMU, are in tests/process/test_snapshot_guests.py."""

import os
from pathlib import Path

import pytest

from lab.arches import ARCHES
from lab.core.model import BootFacts
from lab.core.results import BootResult, CellResult
from lab.guest import qemu, snapshot
from lab.host import cache
from tests.unit.conftest import fake_build

# ---------------------------------------------------------------- the command line

def test_a_template_boots_on_a_shared_ram_file_and_a_clone_on_a_private_one():
    arch, k, i, run = ARCHES["aarch64"], Path("/k/Image"), Path("/k/i.cpio"), Path("/r")
    plain = qemu.command_line(arch, k, i, "x", run)
    template = qemu.command_line(arch, k, i, "x", run, ram=qemu.RamFile(Path("/t/r,am"), True))
    clone = qemu.command_line(arch, k, i, "x", run, ram=qemu.RamFile(Path("/t/r,am"), False),
                              incoming=True)
    assert "-incoming" not in plain and "-object" not in plain
    assert template[template.index("-M") + 1] == "virt,memory-backend=lab-ram"
    backend = template[template.index("-object") + 1]
    assert backend == "memory-backend-file,id=lab-ram,size=512M,mem-path=/t/r,,am,share=on"
    assert clone[clone.index("-object") + 1].endswith(",share=off")      # never written back
    assert clone[-2:] == ["-incoming", "defer"] and "-incoming" not in template


# ---------------------------------------------------------------- the RAM file's digest

def test_the_ram_digest_reads_the_data_extents_and_catches_truncation_and_changes(tmp_path):
    ram = tmp_path / "ram"
    with open(ram, "wb") as fh:
        fh.truncate(64 << 20)
        fh.seek(32 << 20)
        fh.write(b"x" * 8192)
    size, digest = snapshot.ram_digest(ram)
    assert size == 64 << 20 and snapshot.ram_digest(ram, size) == (size, digest)
    with open(ram, "r+b") as fh:
        fh.seek((32 << 20) + 100)
        fh.write(b"y")
    assert snapshot.ram_digest(ram)[1] != digest
    os.truncate(ram, 1 << 20)
    with pytest.raises(cache.CorruptEntry, match="truncated: 1048576 bytes of 67108864"):
        snapshot.ram_digest(ram, size)


# ---------------------------------------------------------------- results

def test_results_say_how_a_guest_booted_and_old_results_still_load():
    facts = BootFacts("6.1", "tcg", "quiet", 0.1, False, "restored", "k" * 64, "made now")
    again = BootResult.from_json(BootResult(0, facts).to_json(), [])
    assert again.facts == facts
    old = BootResult(0, BootFacts("6.1", "tcg", "quiet", 0.9, False)).to_json()
    for name in ("boot", "template", "note"):
        del old["facts"][name]
    assert BootResult.from_json(old, []).facts.boot == "cold"


def test_the_boots_of_one_template_are_one_boot_to_the_statistics():
    from lab.core.model import Cell

    def boot(i, how, template=""):
        return BootResult(i, BootFacts("6.1", "tcg", "", 0.1, None, how, template),
                          samples={"ns": [float(i)]})

    cell = CellResult(Cell("x86_64", "k", "c", ()), "s",
                      boots=[boot(0, "restored", "T"), boot(1, "cold"), boot(2, "restored", "T"),
                             boot(3, "restored", "U")])
    assert cell.boot_samples("ns") == [[0.0, 2.0], [1.0], [3.0]]
    assert cell.boot_mode == "mixed" and cell.to_json()["boot"] == "mixed"


def test_lab_exec_restores_unless_cold_and_lab_run_takes_cold(monkeypatch, tmp_path):
    from lab.app import cli
    from lab.app.commands import guest
    monkeypatch.setattr(guest, "ensure", lambda *a, **kw: fake_build("x86_64", tmp_path))
    for extra, restore in (([], True), (["--cold"], False)):
        args = cli.parser().parse_args(["exec", "--arch", "x86_64", "--kernel", "nokpti",
                                        "--logs", str(tmp_path / "logs"), *extra, "--", "true"])
        assert guest._guest(args, "exec").restore is restore
    assert cli.parser().parse_args(["run", "x.yaml", "--cold"]).cold
