"""Snapshot templates against the fake QEMU: made once by a cold boot, restored many
times, each clone isolated; the key; every way a template can be bad (truncated,
changed, another key's, written by a clone) ends in a cold boot with a note."""

import functools
import os
import shutil
from pathlib import Path

import pytest

from lab import qemu, snapshot
from lab.arches import ARCHES
from lab.build import cache
from lab.errors import OutputLost
from lab.guest import Guest
from lab.model import BootFacts
from lab.results import BootResult, CellResult
from tests.unit.conftest import fake_build


@pytest.fixture
def guest(guest):
    """The fast tier's factory of fake guests (tests/unit/conftest.py), restored by default."""
    return functools.partial(guest, restore=True)


def _template(g: Guest) -> snapshot.Template:
    found = snapshot.lookup(g.arch.name, g.facts.template)
    assert found is not None
    return found


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


# ---------------------------------------------------------------- boot once, restore many

def test_the_first_guest_makes_the_template_and_the_next_ones_restore_it(guest):
    first = guest()
    assert first.facts.boot == "restored" and first.facts.note.startswith(
        f"template {first.facts.template[:12]} made now, by a cold boot of")
    assert first.run("echo hello").output == "hello\n"
    second = guest()
    assert second.facts.boot == "restored" and second.facts.note == ""
    assert second.facts.template == first.facts.template == second.template_key()
    assert second.facts.kernel_release == "6.1.0-fake" and second.faults() == []
    assert second.run("cat /run/lab-template").output.strip() == second.facts.template
    cold = guest(restore=False)
    assert cold.facts.boot == "cold" and cold.facts.template == ""


def test_a_file_written_in_one_clone_is_absent_from_the_next(guest):
    a = guest()
    a.put_file(b"secret", "/tmp/mine")
    assert a.run("cat /tmp/mine").output == "secret"
    a.close()
    b = guest()
    reply = b.run("cat /tmp/mine")
    assert reply.exit_code == 1 and "No such file" in reply.output


def test_another_command_line_never_gets_the_template_of_another(guest):
    a = guest(cmdline=("lab.mark=A",))
    b = guest(cmdline=("lab.mark=B",))
    assert a.facts.template != b.facts.template
    assert "made now" in b.facts.note                     # B made its own
    assert b.run("cat /run/lab-template").output.strip() == b.facts.template


def test_a_template_in_another_keys_place_is_refused_and_the_guest_boots_cold(guest):
    a = guest(cmdline=("lab.mark=A",))
    b_key = Guest(a.build, ("lab.mark=B",), accel="tcg").template_key()
    shutil.copytree(_template(a).path, snapshot.template_dir("x86_64", b_key))
    b = guest(cmdline=("lab.mark=B",))
    assert b.facts.boot == "cold" and "made for another key" in b.facts.note
    assert not snapshot.template_dir("x86_64", b_key).exists()


@pytest.mark.parametrize("victim, reason", [("ram", "truncated"), ("state", "truncated"),
                                            ("meta.json", "not JSON")])
def test_a_truncated_template_is_deleted_and_the_guest_boots_cold(guest, victim, reason):
    made = _template(guest())
    path = made.path / victim
    os.truncate(path, path.stat().st_size // 2)
    g = guest()
    assert g.facts.boot == "cold" and reason in g.facts.note and "deleted" in g.facts.note
    assert g.run("echo still fine").output == "still fine\n"
    assert not made.path.exists()
    assert "made now" in guest().facts.note                # the next guest makes a new one


def test_a_template_whose_ram_changed_is_deleted(guest):
    made = _template(guest())
    with open(made.ram, "r+b") as fh:
        fh.write(b"\0" * 10)
    g = guest()
    assert g.facts.boot == "cold" and "digest differs" in g.facts.note


def test_a_clone_never_writes_the_ram_file_and_one_that_did_loses_its_template(guest):
    made = _template(guest())
    before = made.ram.stat().st_mtime_ns
    clone = guest()
    clone.put_file(os.urandom(3000), "/tmp/blob")
    clone.close()
    assert made.ram.stat().st_mtime_ns == before and made.path.exists()
    clone = guest()
    os.utime(made.ram)                                     # as a write through the mapping would
    clone.close()
    assert not made.path.exists()


def test_a_boot_with_a_kernel_fault_makes_no_template(guest, fake_qemu):
    fake_qemu("warn")
    g = guest()
    assert g.facts.boot == "cold" and g.facts.note == "no template made: the boot printed a " \
                                                      "kernel warning"
    assert [f.kind for f in g.faults()] == ["warning"]      # its own, cold boot: still reported
    assert snapshot.lookup("x86_64", g.template_key()) is None


def test_a_clone_checks_output_loss_from_where_its_template_left_the_count(guest, fake_qemu):
    guest().run("echo make the count grow")
    g = guest()
    assert g.shell._tx_base > 0
    assert g.run("flood 9000").output == "a" * 9000        # nothing lost: no false alarm
    fake_qemu("drop")
    lossy = guest()
    with pytest.raises(OutputLost):
        lossy.run("flood 9000")


def test_templates_beyond_the_bound_go_least_recently_used_first(guest, monkeypatch):
    monkeypatch.setattr(snapshot, "MAX_TEMPLATES", 2)
    keys = [guest(cmdline=(f"n={n}",)).facts.template for n in range(3)]
    assert [snapshot.lookup("x86_64", k) is not None for k in keys] == [False, True, True]


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
    from lab.model import Cell

    def boot(i, how, template=""):
        return BootResult(i, BootFacts("6.1", "tcg", "", 0.1, None, how, template),
                          samples={"ns": [float(i)]})

    cell = CellResult(Cell("x86_64", "k", "c", ()), "s",
                      boots=[boot(0, "restored", "T"), boot(1, "cold"), boot(2, "restored", "T"),
                             boot(3, "restored", "U")])
    assert cell.boot_samples("ns") == [[0.0, 2.0], [1.0], [3.0]]
    assert cell.boot_mode == "mixed" and cell.to_json()["boot"] == "mixed"


def test_lab_exec_restores_unless_cold_and_lab_run_takes_cold(monkeypatch, tmp_path):
    from lab import cli
    monkeypatch.setattr(cli, "_ensure", lambda *a, **kw: fake_build("x86_64", tmp_path))
    for extra, restore in (([], True), (["--cold"], False)):
        args = cli.parser().parse_args(["exec", "--arch", "x86_64", "--kernel", "nokpti",
                                        "--logs", str(tmp_path / "logs"), *extra, "--", "true"])
        assert cli._guest(args, "exec").restore is restore
    assert cli.parser().parse_args(["run", "x.yaml", "--cold"]).cold
