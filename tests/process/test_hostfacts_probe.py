"""Host facts: the probe boot against the fake QEMU, which boots, fails, or hangs until
the probe's deadline. (From tests/unit/test_hostfacts.py.)"""

import time

from lab.host import facts


def test_the_probe_boot_passes_fails_and_hangs_within_its_deadline(fake_qemu, monkeypatch):
    assert facts.probe_boot("tcg", "qemu64") == (True, "a probe boot reached its serial output")
    fake_qemu("exit")
    ok, reason = facts.probe_boot("tcg", "qemu64")
    assert not ok and "probe boot failed" in reason and "told to exit" in reason
    fake_qemu("hang")
    monkeypatch.setattr(facts, "PROBE_DEADLINE_S", 1.0)
    started = time.monotonic()
    ok, reason = facts.probe_boot("tcg", "qemu64")
    assert not ok and "hung" in reason
    assert time.monotonic() - started < 1.0 + 3
