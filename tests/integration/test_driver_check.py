"""lab driver --check with the real tools against the cached aarch64/nokpti kernel:
drivers/pl011-lab passes every check, and a driver with one planted finding per
check (tests/data/drivers/flawed) fails each, with the finding's file:line."""

import json
import shutil

import pytest

from tests.conftest import ROOT, lab, lab_qemus

pytestmark = pytest.mark.qemu
FLAWED = ROOT / "tests" / "data" / "drivers" / "flawed"


def _checks(out) -> dict:
    return {c["name"]: c for c in json.loads((out / "checks.json").read_text())["checks"]}


def _line(text: str) -> int:
    """The line of lab_flawed.c that holds text (where a finding is planted)."""
    lines = (FLAWED / "lab_flawed.c").read_text().splitlines()
    (number,) = [i for i, line in enumerate(lines, 1) if text in line]
    return number


def test_pl011_lab_passes_every_check(tmp_path):
    result = lab("driver", "--check", "drivers/pl011-lab", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    checks = _checks(tmp_path)
    for name in ("checkpatch", "W=1", "sparse"):
        assert checks[name]["status"] == "pass", checks[name]
        assert checks[name]["findings"] == [] and (tmp_path / checks[name]["log"]).is_file()
    cocci = checks["coccicheck"]
    assert cocci["status"] == ("pass" if shutil.which("spatch") else "skip"), cocci
    assert "PASS: results in" in result.stdout
    assert "<testcase " in (tmp_path / "junit.xml").read_text()
    assert not lab_qemus()


def test_a_flawed_driver_fails_each_check_with_the_finding_s_place(tmp_path):
    result = lab("driver", "--check", str(FLAWED), "--out", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    checks = _checks(tmp_path)
    planted = {
        "checkpatch": (_line("checkpatch: no blank line"), "LINE_SPACING"),
        "W=1": (_line("int lab_flawed_helper(int x)"), "-Wmissing-prototypes"),
        "sparse": (_line("return *(u32 *)lab_flawed_base;"), "cast removes address space"),
    }
    if shutil.which("spatch"):
        planted["coccicheck"] = (_line("kfree(p);"), "NULL check before some freeing functions")
    for name, (line, what) in planted.items():
        check = checks[name]
        assert check["status"] == "fail", check
        hits = [f for f in check["findings"] if f["file"] == "lab_flawed.c"
                and f["line"] == line and what in f["type"] + f["message"]]
        assert hits, f"{name}: no {what!r} at lab_flawed.c:{line} in {check['findings']}"
        assert f"lab_flawed.c:{line}" in result.stdout
    assert "FAIL: results in" in result.stdout
