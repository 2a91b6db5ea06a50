"""The dmesg step kind: the kernel's log, waited for up to the step's deadline."""

import pytest

from lab.core.errors import UserError
from lab.scenario import scenario
from lab.scenario.steps.dmesg import Dmesg
from tests.unit.fakes import FakeGuest, context


def test_a_message_that_arrives_late_is_waited_for():
    logs = iter(["[1.0] booting\n", "[1.0] booting\n", "[1.0] booting\n[2.1] ttyLAB0 ready\n"])
    guest = FakeGuest({"^dmesg$": lambda g: (next(logs), 0)})
    step = Dmesg(name="d", line=1, match=r"ttyLAB0 ready")
    assert step.execute(context(guest)) == []
    assert len(guest.ran) == 3


def test_a_message_that_never_comes_fails_at_the_deadline():
    guest = FakeGuest({"^dmesg$": ("[1.0] booting\n", 0)})
    step = Dmesg(name="d", line=1, match=r"ttyLAB0 ready")
    assert step.execute(context(guest, seconds=0.5)) == [
        "output does not match 'ttyLAB0 ready'"]


def test_a_forbidden_message_fails_at_once():
    guest = FakeGuest({"^dmesg$": ("[1.0] WARNING: CPU: 0 PID: 1\n", 0)})
    step = Dmesg(name="d", line=1, match="never", no_match="WARNING")
    problems = step.execute(context(guest))
    assert "output matches 'WARNING'" in problems[-1] and len(guest.ran) == 1


def load(tmp_path, steps: str):
    path = tmp_path / "d.yaml"
    path.write_text("name: d\nmatrix: {arch: aarch64, kernel: nokpti}\n" + steps)
    return scenario.load(path)


def test_it_loads_from_yaml_and_needs_a_regex(tmp_path):
    s = load(tmp_path, "steps: [{dmesg: {match: 'Booting Linux'}}]\n")
    assert isinstance(s.steps[0], Dmesg) and s.steps[0].name == "dmesg: Booting Linux"
    with pytest.raises(UserError, match="needs match, no_match or both"):
        load(tmp_path, "steps: [{dmesg: {}}]\n")
    with pytest.raises(UserError, match="bad regex"):
        load(tmp_path, "steps: [{dmesg: {match: '('}}]\n")
