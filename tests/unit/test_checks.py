"""lab driver --check, fast: the finding parsers on real tool output (recorded from
checkpatch.pl, gcc 12, sparse 0.6.4 and coccinelle 1.1.1 on Linux 6.1), and the checks
run against fake tools."""

import sys
from pathlib import Path

import pytest

from lab.app import checks
from lab.app.checks import CheckResult, CheckRun, Finding
from lab.core.results import Status
from tests.unit.conftest import fake_build

#: Real output, recorded (tests/data/checks/): checkpatch.pl --strict --show-types
#: --root=SRC -f bad.c in the file's directory; a W=1 build and a sparse C=2 run of a module
#: at /tmp/s2; coccicheck MODE=report of a module at /tmp/cc2 (every spatch command it ran
#: is in the log, as make prints them).
DATA = Path(__file__).resolve().parents[1] / "data" / "checks"


def sample(name: str) -> str:
    return (DATA / name).read_text()


# ---------------------------------------------------------------- parsers

def test_checkpatch_findings_have_file_line_severity_type_and_message():
    found = checks.parse_checkpatch(sample("checkpatch.log"))
    assert [(f.where, f.severity, f.type) for f in found] == [
        ("bad.c:3", "WARNING", "INCLUDE_LINUX"), ("bad.c:5", "ERROR", "INITIALISED_STATIC"),
        ("bad.c:5", "CHECK", "CAMELCASE"), ("bad.c:9", "WARNING", "LEADING_SPACE"),
        ("bad.c:10", "WARNING", "BRACES"), ("bad.c:11", "WARNING", "PRINTK_WITHOUT_KERN_LEVEL"),
        ("bad.c:13", "CHECK", "SPACING"), ("bad.c:14", "WARNING", "SPACING")]
    assert found[2].message == "Avoid CamelCase: <fooBar>"
    assert found[0].summary == ("bad.c:3: WARNING INCLUDE_LINUX: Use #include <linux/io.h> "
                                "instead of <asm/io.h>")
    clean = ("total: 0 errors, 0 warnings, 0 checks, 632 lines checked\n\n"
             "pl011_lab.c has no obvious style problems and is ready for submission.\n")
    assert checks.parse_checkpatch(clean) == []


def test_a_checkpatch_finding_without_a_file_line_is_the_checked_file_s():
    text = "WARNING:SPDX_LICENSE_TAG: Missing or malformed SPDX-License-Identifier tag\n"
    (f,) = checks.parse_checkpatch(text, file="lab.c")
    assert (f.file, f.line, f.type) == ("lab.c", 0, "SPDX_LICENSE_TAG") and f.where == "lab.c"
    two = text + "ERROR:TRAILING_WHITESPACE: trailing whitespace\n#4: FILE: lab.c:4:\n"
    assert [f.where for f in checks.parse_checkpatch(two, file="lab.c")] == ["lab.c", "lab.c:4"]


def test_gcc_warnings_and_errors_are_findings_and_notes_excerpts_and_make_lines_are_not():
    found = checks.parse_compiler(sample("gcc-w1.log"), "/tmp/s2")
    assert [(f.where, f.column, f.severity, f.type) for f in found] == [
        ("s2.c:9", 13, "warning", "-Wunused-but-set-variable"),
        ("s2.c:17", 27, "error", ""),
        ("s2.c:18", 1, "error", "-Werror=return-type")]
    assert found[0].message == "variable \u2018unused\u2019 set but not used"


def test_a_finding_outside_the_driver_keeps_the_path_the_tool_printed():
    header = "/root/src/linux/include/linux/module.h"
    (f,) = checks.parse_compiler(f"{header}:88:1: warning: oops [-Wextra]\n", "/tmp/s2")
    assert f.file == header and f.line == 88
    (g,) = checks.parse_compiler("/tmp/s22/a.c:1:1: warning: x\n", "/tmp/s2")
    assert g.file == "/tmp/s22/a.c"          # a sibling of the copy is not in it


def test_sparse_details_join_their_warning_and_paths_are_the_driver_s():
    found = checks.parse_compiler(sample("sparse.log"), "/tmp/s2")
    assert [(f.where, f.column, f.severity, f.type) for f in found] == [
        ("s2.c:12", 22, "warning", ""), ("s2.c:12", 32, "warning", "")]
    assert found[0].message == ("incorrect type in argument 1 (different address spaces); "
                                "expected void const volatile [noderef] __iomem *addr; "
                                "got unsigned int *")
    assert found[1].message == "invalid access past the end of 'buf' (16 16)"


def test_coccicheck_report_lines_are_findings_and_spatch_s_own_warnings_are_not():
    found = checks.parse_coccicheck(sample("coccicheck.log"), "/tmp/cc2")
    assert [(f.where, f.column, f.severity) for f in found] == [
        ("cc2.c:21", 2, "WARNING"), ("cc2.c:11", 5, "report"), ("cc2.c:14", 26, "ERROR")]
    assert found[0].message == "NULL check before some freeing functions is not needed."
    assert found[1].message == 'Unneeded variable: "ret". Return "0" on line 15'
    assert found[2].message == "c is NULL but dereferenced."


def test_a_check_not_run_changes_no_verdict_and_one_that_could_not_run_fails_it(tmp_path):
    kb = fake_build("aarch64", tmp_path)
    ok, skip = CheckResult("W=1", Status.PASS), CheckResult("coccicheck", Status.SKIP)
    assert CheckRun(tmp_path, kb, tmp_path, (ok, skip)).status is Status.PASS
    error = CheckResult("sparse", Status.ERROR, message="sparse not found")
    assert CheckRun(tmp_path, kb, tmp_path, (ok, error, skip)).status is Status.ERROR
    fail = CheckResult("checkpatch", Status.FAIL, (Finding("a.c", 3, "ERROR", "x", "T"),))
    data = CheckRun(tmp_path, kb, tmp_path, (fail, ok)).to_json()
    assert data["status"] == "fail" and data["checks"][0]["findings"][0]["line"] == 3


# ---------------------------------------------------------------- the checks, on fake tools

FAKE_MAKE = f"""#!{sys.executable}
import sys
args = sys.argv[1:]
copy = next(a[2:] for a in args if a.startswith("M="))
if "coccicheck" in args:
    print("warning: line 134: should no_llseek be a metavariable?")
    print(copy + "/lab.c:30:2-7: WARNING: NULL check before some freeing functions is not needed.")
elif "C=2" in args:
    print("  CHECK   " + copy + "/lab.c")
    print(copy + "/lab.c:24:17: warning: cast removes address space '__iomem' of expression",
          file=sys.stderr)
else:   # a build: the compiler's warning (W=1's finding, never sparse's)
    print(copy + "/lab.c:16:5: warning: no previous prototype for 'f' [-Wmissing-prototypes]",
          file=sys.stderr)
"""
FAKE_PERL = f"""#!{sys.executable}
import sys
name = sys.argv[-1]
print("WARNING:LINE_SPACING: Missing a blank line after declarations")
print("#37: FILE: " + name + ":37:")
print("total: 0 errors, 1 warnings, 0 checks, 50 lines checked")
sys.exit(1)
"""


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """make, perl, sparse, spatch and ocamlopt on PATH, and a kernel tree with checkpatch.pl."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("make", FAKE_MAKE), ("perl", FAKE_PERL), ("sparse", "#!/bin/sh\n"),
                       ("spatch", "#!/bin/sh\n"), ("ocamlopt", "#!/bin/sh\n")):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))        # only the fakes: no real spatch
    libpython = tmp_path / "libpython3.11.so.1.0"  # what spatch's Python scripts load
    libpython.write_text("")
    monkeypatch.setattr(checks.packages, "PYTHON_LIBRARY", str(libpython))
    tree = tmp_path / "linux"
    (tree / "scripts").mkdir(parents=True)
    (tree / "scripts" / "checkpatch.pl").write_text("")
    monkeypatch.setattr(checks, "kernel_tree", lambda kbuild: tree)
    monkeypatch.setattr(checks, "module_make", lambda kbuild, copy, *a: ["make", f"M={copy}", *a])
    driver = tmp_path / "drv"
    driver.mkdir()
    (driver / "Kbuild").write_text("obj-m += lab.o\n")
    (driver / "lab.c").write_text("// SPDX-License-Identifier: GPL-2.0\n")
    (driver / "lab.mod.c").write_text("/* kbuild's, from an in-place build */\n")
    return driver, bindir


def test_each_check_reports_its_own_findings_and_keeps_its_log(fake_tools, tmp_path):
    driver, _ = fake_tools
    run = checks.run_checks(fake_build("aarch64", tmp_path), driver, tmp_path / "out")
    by = {r.name: r for r in run.results}
    assert list(by) == ["checkpatch", "W=1", "sparse", "coccicheck"]
    assert [f.summary for f in by["checkpatch"].findings] == [
        "lab.c:37: WARNING LINE_SPACING: Missing a blank line after declarations"]
    assert len(by["checkpatch"].commands) == 1          # lab.c only: lab.mod.c is kbuild's
    assert [f.where for f in by["W=1"].findings] == ["lab.c:16"]
    # sparse's make C=2 ran on a built copy: the build's gcc warning is not sparse's
    assert [f.summary for f in by["sparse"].findings] == [
        "lab.c:24: warning: cast removes address space '__iomem' of expression"]
    assert len(by["sparse"].commands) == 2
    assert [f.where for f in by["coccicheck"].findings] == ["lab.c:30"]
    assert all(r.status is Status.FAIL for r in run.results) and run.status is Status.FAIL
    for r in run.results:
        assert r.log and (tmp_path / "out" / r.log).is_file() and r.duration_s > 0
    assert "$ make M=" in (tmp_path / "out" / "sparse.log").read_text()
    assert not (driver / "lab.o").exists()       # the user's directory stays as it was


def test_without_spatch_coccicheck_is_not_run_and_names_the_package(fake_tools, tmp_path):
    driver, bindir = fake_tools
    (bindir / "spatch").unlink()
    (bindir / "sparse").unlink()
    run = checks.run_checks(fake_build("aarch64", tmp_path), driver, tmp_path / "out")
    by = {r.name: r for r in run.results}
    assert by["coccicheck"].status is Status.SKIP and "coccinelle" in by["coccicheck"].message
    assert by["coccicheck"].commands == ()
    assert by["sparse"].status is Status.ERROR and "package sparse" in by["sparse"].message


def test_without_ocamlopt_coccicheck_is_not_run_and_names_ocaml_nox(fake_tools, tmp_path):
    """Debian's coccinelle does not pull in the OCaml compiler that the tree's OCaml
    scripts need: coccicheck would fail halfway ("No OCaml compiler found!")."""
    driver, bindir = fake_tools
    (bindir / "ocamlopt").unlink()
    run = checks.run_checks(fake_build("aarch64", tmp_path), driver, tmp_path / "out")
    by = {r.name: r for r in run.results}
    assert by["coccicheck"].status is Status.SKIP and "ocaml-nox" in by["coccicheck"].message
    assert by["coccicheck"].commands == ()


def test_without_libpython_coccicheck_is_not_run_and_names_libpython(fake_tools, tmp_path,
                                                                    monkeypatch):
    """spatch runs the tree's Python scripts through libpython, which Debian's coccinelle
    does not pull in; without it spatch prints an error and exits 0."""
    driver, _ = fake_tools
    monkeypatch.setattr(checks.packages, "PYTHON_LIBRARY", str(tmp_path / "nonesuch.so"))
    run = checks.run_checks(fake_build("aarch64", tmp_path), driver, tmp_path / "out")
    by = {r.name: r for r in run.results}
    assert by["coccicheck"].status is Status.SKIP
    assert "libpython3.11" in by["coccicheck"].message and by["coccicheck"].commands == ()


def test_a_module_that_does_not_build_is_an_error_of_w1_with_its_errors(fake_tools, tmp_path):
    driver, bindir = fake_tools
    (bindir / "make").write_text(f"#!{sys.executable}\nimport sys\nprint('lab.c:3:1: error: "
                                 "expected \\';\\' before \\'}}\\' token')\nsys.exit(2)\n")
    run = checks.run_checks(fake_build("aarch64", tmp_path), driver, tmp_path / "out")
    by = {r.name: r for r in run.results}
    assert by["W=1"].status is Status.ERROR and "does not build" in by["W=1"].message
    assert [f.severity for f in by["W=1"].findings] == ["error"]
    assert by["sparse"].status is Status.ERROR and by["sparse"].findings == ()
