"""lab plan: the run a scenario would make, shown and checked, nothing built or booted."""

import json

from tests.conftest import ROOT
from tests.unit.inprocess import lab


def test_plan_shows_cells_steps_boots_and_kernels_and_builds_nothing(tmp_path):
    cache = tmp_path / "cache"
    done = lab("plan", str(ROOT / "scenarios" / "kpti.yaml"), "--json",
               env={"LAB_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    (kpti,) = data["scenarios"]
    cells = {c["id"]: c for c in kpti["cells"]}
    assert len(cells) == 6 and data["boots"] == 6 * kpti["repeat"]
    assert cells["x86_64-kpti-forced-on"]["cmdline_words"] == ["pti=on"]
    assert cells["aarch64-kpti-forced-on"]["steps"][0] == "assert KPTI is in use"
    assert data["kernels"] == ["aarch64/kpti", "aarch64/nokpti", "x86_64/kpti", "x86_64/nokpti"]
    assert not cache.exists() or not any((cache / "kernels").glob("*"))
    text = lab("plan", str(ROOT / "scenarios" / "kpti.yaml"), env={"LAB_CACHE": str(cache)})
    assert "18 boot(s) on 4 kernel(s)" in text.stdout or f"{data['boots']} boot(s)" in text.stdout


def test_plan_refuses_bad_input_as_run_does(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmatrix:\n  arch: [sparc]\n  kernel: [kpti]\nsteps:\n  - run: x\n")
    done = lab("plan", str(bad))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{bad}:3: matrix.arch: unknown arch 'sparc'" in done.stderr
