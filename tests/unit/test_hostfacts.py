"""Host facts: the probe cache written once, atomically, under a lock; QEMU's version
against the fake QEMU. The probe boot is in tests/process/test_hostfacts_probe.py."""

import json
import threading
import time

import pytest

from lab.arches import ARCHES
from lab.core.model import AccelStatus, HostFacts
from lab.host import facts


@pytest.fixture
def counted_probe(monkeypatch, fake_qemu):
    """probe_kvm replaced by a slow counter, so concurrent callers overlap."""
    monkeypatch.delenv("LAB_ACCEL", raising=False)
    calls = []

    def probe():
        calls.append(threading.get_ident())
        time.sleep(0.3)
        return True, "probed"

    monkeypatch.setattr(facts, "probe_kvm", probe)
    return calls


def test_concurrent_labs_probe_once_and_write_the_cache_once(counted_probe, tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(facts.accel_status()))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(counted_probe) == 1
    assert [r.accel for r in results] == ["kvm"] * 4
    cache = tmp_path / "cache"
    written = json.loads((cache / "accel.json").read_text())
    assert written["kvm"] is True and "fake QEMU" in written["stamp"]
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".accel-*"))
    facts.accel_status()
    assert len(counted_probe) == 1                            # read from the cache
    facts.accel_status(probe=True)
    assert len(counted_probe) == 2                            # lab doctor probes again


def test_a_stale_cache_is_probed_again(counted_probe, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "accel.json").write_text('{"stamp": "old", "kvm": false, "reason": "x"}')
    assert facts.accel_status().kvm is True and len(counted_probe) == 1
    assert facts.choose_accel(ARCHES["x86_64"], "tcg") == "tcg"


def test_lab_accel_overrides_the_probe(counted_probe, monkeypatch):
    monkeypatch.setenv("LAB_ACCEL", "tcg")
    assert facts.accel_status() == AccelStatus("tcg", False, "set by LAB_ACCEL")
    assert not counted_probe


def test_the_host_part_of_a_results_document(fake_qemu, monkeypatch):
    monkeypatch.setenv("LAB_ACCEL", "tcg")
    host = facts.summary()
    assert host.qemu.startswith("QEMU emulator version 7.2.0 (fake")
    assert host.accel_available == "tcg" and host.accel_reason == "set by LAB_ACCEL"
    assert host.cpu and host.cores >= 1
    # results.json keeps its keys, and an older file without some reads back
    assert set(host.to_json()) == {"accel_available", "accel_reason", "cpu", "qemu", "cores",
                                   "name"}
    assert HostFacts.from_json(host.to_json()) == host
    assert HostFacts.from_json({"cores": 2}) == HostFacts(cores=2)
