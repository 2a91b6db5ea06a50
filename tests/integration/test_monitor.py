"""The monitor on a real QEMU: what a scenario may ask passes, what QEMU refuses
fails its step with QEMU's words, and nothing else reaches the monitor."""

import json

import pytest

from tests.conftest import lab, lab_qemus

pytestmark = pytest.mark.qemu

SCENARIO = """\
name: monitor
matrix: {arch: aarch64, kernel: nokpti}
steps:
  - name: status
    qmp: {command: query-status, expect: {status: running}}
  - name: info status
    hmp: info status
    match: 'VM status: running'
  - name: the PL011's CR
    hmp: xp /1wx 0x9000030
    metrics: [{name: cr, regex: ': (0x[0-9a-f]+)', format: hex}]
  - name: memory that is not there
    hmp: xp /1wx 0x7fffffffff00
  - name: a property that is not there
    qmp: {command: qom-get, args: {path: /machine, property: no-such-property}}
  - name: the guest still answers
    run: 'true'
  - name: the kernel log
    dmesg: {match: 'Booting Linux on physical CPU', no_match: 'Kernel panic'}
"""


def test_allowed_monitor_commands_work_and_refusals_fail_their_step(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text(SCENARIO)
    result = lab("run", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 1, result.stdout + result.stderr
    (cell,) = json.loads((tmp_path / "out" / "results.json").read_text())["cells"]
    steps = {s["name"]: s for s in cell["steps"]}
    assert [steps[n]["status"] for n in ("status", "info status", "the PL011's CR")] == \
        ["pass"] * 3
    assert steps["memory that is not there"]["status"] == "fail"
    assert "Cannot access memory" in steps["memory that is not there"]["message"]
    assert steps["a property that is not there"]["status"] == "fail"
    assert steps["the guest still answers"]["status"] == "pass"
    assert steps["the kernel log"]["status"] == "pass"
    assert cell["status"] == "fail" and not cell["error"]
    assert not lab_qemus()


@pytest.mark.parametrize("step", [
    "qmp: {command: migrate, args: {uri: 'exec:touch /tmp/lab-pwned'}}",
    "qmp: {command: pmemsave, args: {val: 0, size: 4096, filename: /tmp/lab-pwned}}",
    "hmp: 'migrate exec:touch /tmp/lab-pwned'",
    "hmp: 'pmemsave 0 4096 /tmp/lab-pwned'",
    "hmp: 'info status; quit'",
])
def test_host_reaching_monitor_commands_are_refused_before_anything_boots(tmp_path, step):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nmatrix: {{arch: aarch64, kernel: nokpti}}\nsteps:\n  - {step}\n")
    result = lab("run", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"{path}:4:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert not lab_qemus()
