"""lab driver --check's exit codes, with the kernel and the checks faked: 0 when
every check that ran is clean, 1 on findings or a check that could not run, 2 on
bad input; and it boots nothing."""

import json
from pathlib import Path

import pytest

from lab.app import checks, cli
from lab.app.checks import CheckResult, CheckRun, Finding
from lab.app.commands import driver
from lab.core.results import Status
from tests.unit.conftest import fake_build


def _fake_run(tmp_path: Path, *statuses: Status) -> CheckRun:
    results = tuple(CheckResult(name, s, (Finding("lab.c", 3, "WARNING", "m", "T"),)
                                if s is Status.FAIL else (), log=f"{name}.log")
                    for name, s in zip(checks.CHECKS, statuses, strict=False))
    return CheckRun(tmp_path, fake_build("aarch64", tmp_path), tmp_path, results)


@pytest.fixture
def faked_cli(monkeypatch, tmp_path):
    """main(statuses, *argv): lab driver --check ARGV with the kernel and the checks
    faked (the checks end with statuses); its exit code. .seen["kernel"]: which kernel."""
    seen: dict = {}

    def kernel(arch, variant, **kw):
        seen["kernel"] = (arch.name, variant.name)
        return fake_build(arch.name, tmp_path)

    monkeypatch.setattr(driver.build, "build_kernel", kernel)
    monkeypatch.setattr(driver, "run_scenarios",
                        lambda *a, **kw: pytest.fail("--check boots nothing"))

    def main(statuses, *argv) -> int:
        monkeypatch.setattr(driver.checks, "run_checks",
                            lambda kb, driver, out, progress: _fake_run(tmp_path, *statuses))
        with pytest.raises(SystemExit) as exited:
            cli.main(["driver", "--check", *argv])
        return int(str(exited.value.code))
    main.seen = seen       # type: ignore[attr-defined]
    return main


DRIVER = str(Path(__file__).resolve().parents[1] / "data" / "drivers" / "hello")


@pytest.mark.parametrize("statuses, code", [
    ((Status.PASS, Status.PASS, Status.PASS, Status.PASS), 0),
    ((Status.PASS, Status.PASS, Status.PASS, Status.SKIP), 0),
    ((Status.FAIL, Status.PASS, Status.PASS, Status.PASS), 1),
    ((Status.PASS, Status.ERROR, Status.PASS, Status.SKIP), 1),
])
def test_exit_0_when_every_check_that_ran_is_clean_else_1(faked_cli, tmp_path, statuses, code):
    out = tmp_path / "out"
    assert faked_cli(statuses, DRIVER, "--out", str(out)) == code
    assert faked_cli.seen["kernel"] == ("aarch64", "nokpti")
    data = json.loads((out / "checks.json").read_text())
    assert [c["status"] for c in data["checks"]] == [s.value for s in statuses]
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase ") == 4 and 'name="W=1"' in junit
    page = (out / "report.html").read_text()     # its report.html, checks with findings open
    assert f"Exit code <b>{code}</b>" in page
    assert page.count('<details class="failure') == sum(s in (Status.FAIL, Status.ERROR)
                                                          for s in statuses)


def test_arch_and_kernel_choose_the_kernel(faked_cli, tmp_path):
    assert faked_cli((Status.PASS,), DRIVER, "--arch", "x86_64", "--kernel", "kpti",
                     "--out", str(tmp_path / "o")) == 0
    assert faked_cli.seen["kernel"] == ("x86_64", "kpti")


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent/driver"], "not a directory"),
    ([str(Path(__file__).parent)], "no Kbuild file"),
    ([DRIVER, "--scenario", "x.yaml"], "drop --scenario"),
    ([DRIVER, "--arch", "sparc"], "unknown arch 'sparc'"),
])
def test_bad_input_exits_2(faked_cli, tmp_path, capsys, argv, message):
    assert faked_cli((Status.PASS,), *argv, "--out", str(tmp_path / "o")) == 2
    assert message in capsys.readouterr().err
    assert "kernel" not in faked_cli.seen
