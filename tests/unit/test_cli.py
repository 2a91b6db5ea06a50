"""Bad input: a clear one-line error, exit code 2, and never a traceback."""

import pytest

from tests.unit.inprocess import lab


@pytest.mark.parametrize("args, message", [
    (["build", "--arch", "sparc"], "unknown arch 'sparc'; valid arches: aarch64, x86_64"),
    (["build", "--arch", "aarch64", "--kernel", "nokpt"],
     "unknown kernel variant 'nokpt' for aarch64; valid variants: debug, kpti, nokpti"),
    (["build", "--kernel", "/nonexistent/x.config"], "no such file"),
    (["exec", "--arch", "riscv64", "--kernel", "kpti", "--", "true"], "unknown arch 'riscv64'"),
    (["exec", "--arch", "x86_64", "--kernel", "bogus", "--", "true"], "unknown kernel variant"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["exec", "--kernel", "kpti", "--", "true"], "required: --arch"),
])
def test_bad_input_exits_2_with_a_message_and_no_traceback(args, message):
    result = lab(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_bad_fragment_line_names_file_and_line(tmp_path):
    frag = tmp_path / "typo.config"
    frag.write_text("CONFIG_KALLSYMS=y\nCONFIG_MODULES y\n")
    result = lab("build", "--arch", "x86_64", "--kernel", str(frag))
    assert result.returncode == 2
    assert f"{frag}:2: not a Kconfig line" in result.stderr
    assert "Traceback" not in result.stderr
