"""SIGINT, SIGTERM and SIGHUP to a real `lab run`: partial results, the unfinished
cells marked interrupted, the right exit code, and no QEMU left behind."""

import json
import os
import signal
import subprocess
import time

import pytest
from junitparser import Error, JUnitXml

from tests.conftest import LAB, ROOT, lab_qemus

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=lambda s: s.name)
def test_a_signal_mid_run_leaves_results_that_say_what_was_interrupted(tmp_path, sig):
    out = tmp_path / "out"
    proc = subprocess.Popen([*LAB, "run", str(ROOT / "scenarios" / "kpti.yaml"), "--out",
                             str(out), "-j1"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("kpti/**/console.log")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(out.glob("kpti/**/console.log")), "no cell started"
    assert lab_qemus(), "a guest should be running when the signal comes"
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] == sig.name
    statuses = [c["status"] for c in results["cells"]]
    assert len(statuses) == 6 and "interrupted" in statuses
    assert set(statuses) <= {"pass", "interrupted"}
    interrupted = {c["id"] for c in results["cells"] if c["status"] == "interrupted"}
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    said = {case.classname.split(".", 1)[1] for suite in xml for case in suite
            if case.name == "boot" and any(isinstance(r, Error) and sig.name in r.message
                                           for r in case.result)}
    assert said == interrupted
    for cid in interrupted:
        assert json.loads((out / "kpti" / cid / "result.json").read_text())["status"] == \
            "interrupted"
    assert not lab_qemus()


def test_two_runs_into_one_out_directory_the_second_is_refused(tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen([*LAB, "run", str(ROOT / "scenarios" / "kpti.yaml"), "--out",
                              str(out), "--only", "arch=aarch64"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".lab-run.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run([*LAB, "run", str(ROOT / "scenarios" / "kpti.yaml"), "--out",
                             str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2
    assert "another lab run" in second.stderr and "Traceback" not in second.stderr
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert len(json.loads((out / "results.json").read_text())["cells"]) == 3
