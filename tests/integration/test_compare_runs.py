"""lab compare RUN_A RUN_B on two real runs of the same scenario and kernels (an A/A
pair): no cell may be called higher or lower. Kept cheap: one cell, three boots."""

import json

import pytest

from tests.conftest import ROOT, lab

pytestmark = pytest.mark.qemu


def _run(out):
    result = lab("run", str(ROOT / "scenarios" / "kpti.yaml"), "--only", "arch=x86_64",
                 "--only", "kernel=nokpti", "--repeat", "3", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_an_a_a_pair_of_real_runs_calls_nothing_higher_or_lower(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    result = lab("compare", str(a), str(b), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((b / "compare.json").read_text())
    rows = {(r["id"], r["metric"]): r for r in data["rows"]}
    assert set(rows) == {("x86_64-nokpti-default", m) for m in ("getppid_ns", "tcp_rtt_ns")}
    for row in rows.values():
        assert row["boots"] == [3, 3]
        assert row["verdict"] in ("equivalent", "inconclusive"), row["sentence"]
    assert data["only_in_a"] == data["only_in_b"] == []
    boots = json.loads((b / "results.json").read_text())["cells"][0]["boots"]
    assert [x["position"] for x in boots] == [0, 1, 2]
    assert all(x["host_load"] is not None and x["start_s"] is not None for x in boots)
