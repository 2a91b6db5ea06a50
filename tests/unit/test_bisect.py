"""`lab exec --bisect` exits as `git bisect run` expects, whatever happens."""

from __future__ import annotations

import pytest

from lab.app.cli import bisect_code
from lab.core.errors import (
    BuildError,
    GuestLost,
    GuestPanic,
    GuestTimeout,
    InfraError,
    Interrupted,
    OutputLost,
    UserError,
)
from tests.unit.inprocess import lab


@pytest.mark.parametrize("code, expect", [
    (0, 0), (1, 1), (7, 7), (124, 124), (125, 125), (126, 1), (127, 1), (139, 1), (255, 1)])
def test_the_commands_exit_code_maps_to_good_bad_or_skip(code, expect):
    assert bisect_code(code) == expect


@pytest.mark.parametrize("exc, expect", [
    (GuestPanic("Kernel panic"), 1), (GuestTimeout("hung"), 1), (GuestLost("gone"), 1),
    (OutputLost("lost"), 125), (BuildError("make failed"), 125), (UserError("bad option"), 125),
    (InfraError("QEMU missing"), 125), (Interrupted(15, "SIGTERM"), 125),
])
def test_a_broken_kernel_is_bad_and_anything_else_that_stops_the_lab_is_skip(exc, expect):
    assert bisect_code(2, exc) == expect


def test_never_126_or_more():
    assert all(bisect_code(c) < 126 for c in range(256))


def test_a_usage_error_under_bisect_is_a_skip_not_a_bad(tmp_path):
    r = lab("exec", "--bisect", "--arch", "sparc", "--kernel", "nokpti", "--", "true")
    assert r.returncode == 125 and "skip" in r.stderr and "Traceback" not in r.stderr
    r = lab("exec", "--arch", "sparc", "--kernel", "nokpti", "--", "true")
    assert r.returncode == 2
    r = lab("exec", "--arch", "sparc", "--kernel", "nokpti", "--", "echo", "--bisect")
    assert r.returncode == 2                       # --bisect after -- is the command's
