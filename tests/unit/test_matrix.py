"""Matrix expansion and selectors: which cells a scenario has, what each carries,
and which steps apply to them (scenarios written to tmp_path; no kernel needed)."""

import textwrap

import pytest

from lab.core.errors import UserError
from lab.core.model import Cell, Selector
from lab.core.paths import KERNEL_CONFIGS
from lab.scenario import scenario

VARIANTS = KERNEL_CONFIGS / "variants"


def _load(tmp_path, text: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return scenario.load(path)


def _refused(tmp_path, text: str) -> str:
    with pytest.raises(UserError) as err:
        _load(tmp_path, text)
    return str(err.value)


FULL = """\
    name: full
    matrix:
      arch: [aarch64, x86_64]
      kernel: [kpti, nokpti]
      cmdline:
        forced-on: "{kpti_on} nokaslr"
        forced-off: "{kpti_off}"
        plain:
    steps:
      - run: 'true'
    """


def test_cells_are_arch_by_kernel_by_cmdline_in_the_order_written(tmp_path):
    cells = _load(tmp_path, FULL).cells
    assert [c.id for c in cells] == [
        f"{a}-{k}-{c}" for a in ("aarch64", "x86_64") for k in ("kpti", "nokpti")
        for c in ("forced-on", "forced-off", "plain")]


def test_kpti_placeholders_become_each_arch_s_own_words(tmp_path):
    words = {(c.arch, c.cmdline): c.cmdline_words for c in _load(tmp_path, FULL).cells}
    assert words[("aarch64", "forced-on")] == ("kpti=1", "nokaslr")
    assert words[("aarch64", "forced-off")] == ("kpti=0",)
    assert words[("x86_64", "forced-on")] == ("pti=on", "nokaslr")
    assert words[("x86_64", "forced-off")] == ("pti=off",)
    assert words[("x86_64", "plain")] == ()


def test_without_cmdline_there_is_one_default_set(tmp_path):
    cells = _load(tmp_path, """\
        name: d
        matrix: {arch: x86_64, kernel: [nokpti, kpti]}
        steps: [{run: 'true'}]
        """).cells
    assert [(c.id, c.cmdline_words) for c in cells] == [("x86_64-nokpti-default", ()),
                                                        ("x86_64-kpti-default", ())]


def test_cells_carry_their_kernel_resolved_for_their_arch(tmp_path):
    cells = {c.id: c for c in _load(tmp_path, FULL).cells}
    arm, x86 = cells["aarch64-kpti-forced-on"].variant, cells["x86_64-kpti-forced-on"].variant
    assert arm.name == x86.name == "kpti"
    assert arm.fragments == (VARIANTS / "kpti.aarch64.config",)
    assert x86.fragments == (VARIANTS / "kpti.x86_64.config",)
    assert cells["aarch64-nokpti-plain"].variant.fragments == (
        VARIANTS / "nokpti.aarch64.config",)
    # one kernel per (arch, variant): the runner builds each once
    assert cells["aarch64-kpti-forced-on"].variant == cells["aarch64-kpti-forced-off"].variant


def test_a_fragment_path_is_relative_to_the_scenario(tmp_path):
    frag = tmp_path / "frags" / "mine.config"
    frag.parent.mkdir()
    frag.write_text("CONFIG_PRINTK=y\n")
    cells = _load(tmp_path, """\
        name: f
        matrix: {arch: [aarch64, x86_64], kernel: [../frags/mine.config, nokpti]}
        steps: [{run: 'true'}]
        """, name="sub/f.yaml").cells
    mine = [c for c in cells if c.kernel == "mine"]   # named by its stem, a safe path part
    assert [c.arch for c in mine] == ["aarch64", "x86_64"]
    for c in mine:
        assert c.variant.name == "mine" and c.variant.fragments == (frag.resolve(),)


def test_a_missing_fragment_is_refused_at_the_kernel_line(tmp_path):
    message = _refused(tmp_path, """\
        name: f
        matrix:
          arch: aarch64
          kernel: [nokpti, missing.config]
        steps: [{run: 'true'}]
        """)
    assert message.startswith(f"{tmp_path / 's.yaml'}:4: matrix.kernel: ")
    assert "missing.config" in message and "no such file" in message


# ---------------------------------------------------------------- exclude

def test_exclude_takes_values_and_lists_and_removes_only_cells_matching_every_key(tmp_path):
    cells = _load(tmp_path, FULL.replace("    steps:", """\
      exclude:
        - {kernel: nokpti, cmdline: [forced-on, forced-off]}
        - {arch: x86_64, cmdline: plain}
    steps:""")).cells
    assert [c.id for c in cells] == [
        "aarch64-kpti-forced-on", "aarch64-kpti-forced-off", "aarch64-kpti-plain",
        "aarch64-nokpti-plain",
        "x86_64-kpti-forced-on", "x86_64-kpti-forced-off"]


def test_an_exclude_naming_what_the_matrix_lacks_is_refused_at_its_line(tmp_path):
    message = _refused(tmp_path, FULL.replace("    steps:", """\
      exclude:
        - {arch: aarch64}
        - kernel: lts
    steps:"""))
    assert message.startswith(f"{tmp_path / 's.yaml'}:11: matrix.exclude[1].kernel: 'lts' "
                              "is not in the matrix (kpti, nokpti)")


def test_a_matrix_with_everything_excluded_is_refused(tmp_path):
    message = _refused(tmp_path, """\
        name: e
        matrix:
          arch: [aarch64, x86_64]
          kernel: nokpti
          exclude: [{arch: aarch64}, {arch: x86_64}]
        steps: [{run: 'true'}]
        """)
    assert message == (f"{tmp_path / 's.yaml'}:3: matrix: the matrix has no cells "
                       "(everything is excluded)")


# ---------------------------------------------------------------- selectors

def _cell(arch="aarch64", kernel="kpti", cmdline="on") -> Cell:
    return Cell(arch, kernel, cmdline, ())


def test_a_selector_matches_when_every_key_has_one_of_its_values():
    s = Selector((("arch", ("aarch64",)), ("kernel", ("kpti", "nokpti"))))
    assert s.matches(_cell()) and s.matches(_cell(kernel="nokpti", cmdline="x"))
    assert not s.matches(_cell(arch="x86_64"))
    assert not s.matches(_cell(kernel="lts"))
    assert Selector().matches(_cell(arch="x86_64"))            # empty: every cell
    assert str(s) == "arch=aarch64 kernel=kpti,nokpti"


def test_when_selects_the_cells_a_step_runs_in(tmp_path):
    s = _load(tmp_path, FULL.replace("      - run: 'true'", """\
      - run: 'true'
      - {run: arm, when: {arch: aarch64}}
      - {run: forced, when: {kernel: kpti, cmdline: [forced-on, forced-off]}}"""))
    applies = {st.command: [c.id for c in s.cells if st.applies(c)] for st in s.steps}
    assert len(applies["true"]) == 12
    assert applies["arm"] == [c.id for c in s.cells if c.arch == "aarch64"]
    assert applies["forced"] == ["aarch64-kpti-forced-on", "aarch64-kpti-forced-off",
                                 "x86_64-kpti-forced-on", "x86_64-kpti-forced-off"]


def test_when_is_checked_against_the_cells_left_after_exclude(tmp_path):
    message = _refused(tmp_path, """\
        name: w
        matrix:
          arch: [aarch64, x86_64]
          kernel: nokpti
          exclude: [{arch: x86_64}]
        steps:
          - {run: 'true', when: {arch: x86_64}}
        """)
    assert message.startswith(f"{tmp_path / 's.yaml'}:7: steps[0].when.arch: 'x86_64' is "
                              "not in the matrix (aarch64)")


# ---------------------------------------------------------------- rounds

def test_rounds_nest_and_keep_their_order_names_and_when(tmp_path):
    s = _load(tmp_path, """\
        name: r
        matrix: {arch: [aarch64, x86_64], kernel: nokpti}
        steps:
          - {name: first, run: 'true'}
          - rounds: 2
            steps:
              - {name: a, run: 'true'}
              - rounds: 2
                steps:
                  - {name: b, run: 'true', when: {arch: x86_64}}
          - {name: last, run: 'true'}
        """)
    assert [st.name for st in s.steps] == [
        "first",
        "a (round 1/2)", "b (round 1/2) (round 1/2)", "b (round 2/2) (round 1/2)",
        "a (round 2/2)", "b (round 1/2) (round 2/2)", "b (round 2/2) (round 2/2)",
        "last"]
    assert all(st.when.terms == (("arch", ("x86_64",)),)
               for st in s.steps if st.name.startswith("b "))
    assert [st.line for st in s.steps[1:3]] == [7, 10]


# ---------------------------------------------------------------- claim

CLAIMED = """\
    name: c
    claim:
      title: KPTI makes syscalls dearer
      quote: a few hundred cycles
      metrics:
        - getppid_ns
        - {metric}
    matrix: {{arch: aarch64, kernel: [kpti, nokpti]}}
    steps:
      - run: getppid
        metrics: [{{name: getppid_ns, unit: ns}}]
      - rounds: 2
        steps:
          - run: rtt
            metrics: [{{name: rtt_ns}}]
    """


def test_a_claim_names_metrics_the_steps_define_rounds_included(tmp_path):
    s = _load(tmp_path, CLAIMED.format(metric="rtt_ns"))
    assert s.claim.title == "KPTI makes syscalls dearer"
    assert s.claim.quote == "a few hundred cycles" and s.claim.how == ""
    assert s.claim.metrics == ("getppid_ns", "rtt_ns")
    assert list(s.metrics()) == ["getppid_ns", "rtt_ns"]
    assert s.metrics()["getppid_ns"].unit == "ns"


def test_a_claim_metric_no_step_defines_is_refused_at_its_own_line(tmp_path):
    message = _refused(tmp_path, CLAIMED.format(metric="tcp_rtt_ns"))
    assert message == (f"{tmp_path / 's.yaml'}:7: claim.metrics[1]: metric 'tcp_rtt_ns' is "
                       "not defined by any step (defined: getppid_ns, rtt_ns)")
