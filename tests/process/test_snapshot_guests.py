"""Snapshot templates against the fake QEMU: made once by a cold boot, restored many
times, each clone isolated; the key; every way a template can be bad (truncated,
changed, another key's, written by a clone) ends in a cold boot with a note.
(From tests/unit/test_snapshot.py, which keeps the tests that boot nothing.)"""

import functools
import os
import shutil

import pytest

from lab.core.errors import OutputLost
from lab.guest import snapshot
from lab.guest.guest import Guest


@pytest.fixture
def guest(guest):
    """The fast tier's factory of fake guests (tests/unit/conftest.py), restored by default."""
    return functools.partial(guest, restore=True)


def _template(g: Guest) -> snapshot.Template:
    found = snapshot.lookup(g.arch.name, g.facts.template)
    assert found is not None
    return found


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


@pytest.mark.parametrize("mode", ["warn", "slowwarn"])
def test_a_boot_with_a_kernel_fault_makes_no_template(guest, fake_qemu, mode):
    """slowwarn: the warning is still on its way when the shell is ready (the two
    channels are not ordered); the lab asks the kernel log to catch up first."""
    fake_qemu(mode)
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
