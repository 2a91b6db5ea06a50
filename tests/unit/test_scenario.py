"""Scenario loading: the real scenarios load; every malformed one is rejected
with file:line:key, exit code 2 and no traceback, before anything boots."""

import re
from pathlib import Path

import pytest

from lab.core.errors import UserError
from lab.scenario import scenario
from tests.conftest import ROOT
from tests.unit.inprocess import lab

BAD = sorted((Path(__file__).parent.parent / "data" / "bad-scenarios").glob("*.yaml"))


def expectation(path: Path) -> tuple[int, str]:
    """The file's `# expect: LINE: message-prefix`; {dir} is the corpus directory."""
    m = re.match(r"# expect: (\d+): (.*)", path.read_text().splitlines()[0])
    return int(m.group(1)), m.group(2).replace("{dir}", str(path.parent.resolve()))


def test_the_corpus_is_large_enough():
    assert len(BAD) >= 45


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_malformed_scenario_is_rejected_with_file_line_and_key(path):
    line, message = expectation(path)
    with pytest.raises(UserError) as err:
        scenario.load(path)
    assert str(err.value).startswith(f"{path}:{line}: {message}")


@pytest.mark.parametrize("path", BAD[::3], ids=[p.stem for p in BAD[::3]])
def test_lab_run_rejects_it_with_exit_2_and_no_traceback(path, tmp_path):
    line, _ = expectation(path)
    result = lab("run", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"{path}:{line}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()      # nothing ran


def test_kpti_scenario_has_the_six_cells_with_per_arch_command_lines():
    s = scenario.load(ROOT / "scenarios" / "kpti.yaml")
    cells = {(c.arch, c.kernel, c.cmdline): c.cmdline_words for c in s.cells}
    assert cells == {
        ("aarch64", "kpti", "forced-on"): ("kpti=1",),
        ("aarch64", "kpti", "forced-off"): ("kpti=0",),
        ("aarch64", "nokpti", "default"): (),
        ("x86_64", "kpti", "forced-on"): ("pti=on",),
        ("x86_64", "kpti", "forced-off"): ("pti=off",),
        ("x86_64", "nokpti", "default"): (),
    }
    on, off = s.steps[0], s.steps[1]
    assert [c.id for c in s.cells if on.applies(c)] == ["aarch64-kpti-forced-on",
                                                       "x86_64-kpti-forced-on"]
    assert len([c for c in s.cells if off.applies(c)]) == 4
    assert [m.name for st in s.steps for m in st.defines()] == ["getppid_ns", "tcp_rtt_ns"]


def test_every_shipped_scenario_loads():
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        assert scenario.load(path).cells


def test_a_directory_runs_every_scenario_in_it(tmp_path):
    (tmp_path / "b.yaml").write_text("name: b\nmatrix: {arch: aarch64, kernel: nokpti}\n"
                                     "steps: [{run: 'true'}]\n")
    (tmp_path / "a.yaml").write_text("name: a\nmatrix: {arch: x86_64, kernel: kpti}\n"
                                     "steps: [{run: 'true'}]\n")
    assert [s.name for s in scenario.load_all([str(tmp_path)])] == ["a", "b"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no \\*.yaml scenarios"):
        scenario.load_all([str(empty)])


def test_rounds_repeat_their_steps_in_order(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nmatrix: {arch: aarch64, kernel: nokpti}\nsteps:\n"
                    "  - run: 'true'\n"
                    "  - rounds: 2\n"
                    "    steps:\n"
                    "      - {name: a, run: 'true'}\n"
                    "      - {name: b, run: 'true', when: {arch: aarch64}}\n")
    steps = scenario.load(path).steps
    assert [s.name for s in steps] == ["run: true", "a (round 1/2)", "b (round 1/2)",
                                       "a (round 2/2)", "b (round 2/2)"]
    assert steps[2].when.terms == (("arch", ("aarch64",)),)


def test_a_matrix_that_asks_for_too_many_kernels_names_its_kernel_key(tmp_path, monkeypatch):
    """Each kernel not cached is a build of minutes: the bound is checked at load,
    after exclusions, at the line of the matrix's kernel key."""
    from lab.core import inputs
    monkeypatch.setattr(inputs, "MAX_KERNELS", 3)
    path = tmp_path / "many.yaml"
    path.write_text("name: many\nmatrix:\n  arch: [aarch64, x86_64]\n"
                    "  kernel: [kpti, nokpti]\nsteps:\n  - run: 'true'\n")
    with pytest.raises(UserError) as err:
        scenario.load(path)
    assert str(err.value).startswith(f"{path}:4: matrix.kernel: the matrix asks for 4 kernels")
    assert "over the bound of 3" in str(err.value)
    monkeypatch.setattr(inputs, "MAX_KERNELS", 4)
    assert len(scenario.load(path).cells) == 4
    # and a run: kpti.yaml's 4 kernels and 2 debug kernels are 6, each matrix within 4
    path.write_text(path.read_text().replace("[kpti, nokpti]", "[debug]"))
    result = lab("run", str(path), str(ROOT / "scenarios" / "kpti.yaml"),
                 "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "this run asks for 6 kernels (arch x kernel), over the bound of 4" in result.stderr
    assert not (tmp_path / "out").exists()
