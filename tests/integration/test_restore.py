"""Snapshot templates on real guests (issue 15): clones are isolated from each other and
from templates made with another command line; a truncated template falls back to a
cold boot; a `repeat: 10` cell that nothing is compared with restores, in well under
half its cold time."""

import json
import os
import threading

import pytest

from lab.guest import snapshot
from lab.guest.guest import Guest
from tests.conftest import lab

pytestmark = pytest.mark.qemu
ARCHES = ["aarch64", "x86_64"]


@pytest.fixture
def restored(lab_boot):
    """The plugin's guest factory, nokpti guests restored from their templates."""
    return lambda arch, cmdline=(), **kw: lab_boot(arch, "nokpti", cmdline, restore=True, **kw)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_file_written_in_one_clone_is_absent_from_the_next(restored, arch):
    first = restored(arch, ["lab.test=isolation"])
    first.run("echo mine > /root/left-behind && sync")
    assert first.run("cat /root/left-behind").output == "mine\n"
    first.close()
    second = restored(arch, ["lab.test=isolation"])
    assert second.facts.boot == "restored" and second.facts.template == first.facts.template
    assert second.run("test -e /root/left-behind").exit_code == 1
    assert second.faults() == []
    # brought to the present: the wall clock within 2 s of the host's
    assert abs(int(second.run("date +%s").output) - int(__import__("time").time())) <= 2


@pytest.mark.parametrize("arch", ARCHES)
def test_two_clones_run_at_once_without_interference(restored, arch):
    restored(arch, ["lab.test=pair"]).close()             # the template
    a, b = restored(arch, ["lab.test=pair"]), restored(arch, ["lab.test=pair"])
    assert a.facts.boot == b.facts.boot == "restored"
    outputs: dict[str, list[str]] = {"a": [], "b": []}

    def work(name: str, g: Guest) -> None:
        for i in range(5):
            g.run(f"echo {name}{i} >> /root/trail")
        outputs[name] = g.run("cat /root/trail").output.split()

    threads = [threading.Thread(target=work, args=(n, g)) for n, g in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outputs == {"a": [f"a{i}" for i in range(5)], "b": [f"b{i}" for i in range(5)]}
    # each clone got its own host random bytes mixed into its pool
    rand = [g.run("head -c 16 /dev/urandom | od -An -tx1").output for g in (a, b)]
    assert rand[0] != rand[1]


@pytest.mark.parametrize("arch", ARCHES)
def test_a_guest_never_restores_a_template_made_with_another_command_line(restored, arch):
    a = restored(arch, ["lab.mark=AAA"])
    b = restored(arch, ["lab.mark=BBB"])
    assert a.facts.template != b.facts.template
    assert "lab.mark=BBB" in b.run("cat /proc/cmdline").output
    assert "lab.mark=AAA" not in b.run("cat /proc/cmdline").output
    again = restored(arch, ["lab.mark=AAA"])
    assert again.facts.template == a.facts.template
    assert "lab.mark=AAA" in again.run("cat /proc/cmdline").output


def test_a_truncated_template_is_detected_and_the_guest_boots_cold(restored):
    made = restored("x86_64", ["lab.test=truncated"])
    template = snapshot.lookup("x86_64", made.facts.template)
    assert template is not None
    made.close()
    os.truncate(template.ram, template.ram.stat().st_size // 2)
    g = restored("x86_64", ["lab.test=truncated"])
    assert g.facts.boot == "cold" and "truncated" in g.facts.note and "deleted" in g.facts.note
    assert g.run("uname -m").output == "x86_64\n"
    assert not template.path.exists()


def test_a_repeat_10_cell_nothing_is_compared_with_restores_in_under_half_its_cold_time(
        tmp_path):
    (tmp_path / "ten.yaml").write_text(
        "name: ten\ndescription: ten boots of one cell\nrepeat: 10\n"
        "matrix:\n  arch: x86_64\n  kernel: nokpti\n"
        "steps:\n  - name: uname\n    run: uname -m\n")
    lab("run", str(tmp_path / "ten.yaml"), "--out", str(tmp_path / "warm"), "-j1")  # template
    times = {}
    for how, extra in (("restored", []), ("cold", ["--cold"])):
        done = lab("run", str(tmp_path / "ten.yaml"), "--out", str(tmp_path / how), "-j1",
                   *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        cell = json.loads((tmp_path / how / "results.json").read_text())["cells"][0]
        assert cell["boot"] == how and len(cell["boots"]) == 10
        assert cell["boot_policy"].startswith(how)
        times[how] = cell["duration_s"]
    assert times["restored"] < 0.5 * times["cold"], times
