"""Step executors against a fake guest: what passes, what fails and what the
failure says (lab/scenario/steps/: asserts, run, hmp, qmp, module, put, uart)."""

import random
import re

import pytest

from lab.core.model import BootFacts, Metric
from lab.scenario.steps.asserts import FactAssert, MetricAssert
from lab.scenario.steps.hmp import Hmp
from lab.scenario.steps.module import Module
from lab.scenario.steps.put import Put
from lab.scenario.steps.qmp import Qmp
from lab.scenario.steps.run import OUTPUT_TAIL, Run, excerpt
from lab.scenario.steps.uart import UartExpect, UartTransfer
from tests.unit.fakes import FakeGuest, FakeTransfer, context


def _fact(fact, **bounds):
    return FactAssert(name=f"assert {fact}", line=1, fact=fact, **bounds).execute(
        context(FakeGuest(facts=BootFacts("6.1.0", "tcg", "", 0.75, False), tainted=4096)))


# ---------------------------------------------------------------- fact asserts

@pytest.mark.parametrize("fact, bounds, problems", [
    ("kpti_active", {"equals": False}, []),
    ("kpti_active", {"equals": True}, ["kpti_active is False, expected True"]),
    ("kernel_release", {"equals": "6.1.0"}, []),
    ("kernel_release", {"equals": "6.2"}, ["kernel_release is '6.1.0', expected '6.2'"]),
    ("accel", {"equals": "kvm"}, ["accel is 'tcg', expected 'kvm'"]),
    ("boot_s", {"max": 1}, []),
    ("boot_s", {"min": 0.5, "max": 0.75}, []),                     # bounds are inclusive
    ("boot_s", {"min": 1}, ["boot_s is 0.75, expected at least 1"]),
    ("boot_s", {"max": 0.5}, ["boot_s is 0.75, expected at most 0.5"]),
    ("boot_s", {"min": 1, "max": 0.5}, ["boot_s is 0.75, expected at least 1",
                                        "boot_s is 0.75, expected at most 0.5"]),
    ("tainted", {"equals": 4096}, []),
    ("tainted", {"max": 0}, ["tainted is 4096, expected at most 0"]),
])
def test_a_fact_against_equals_min_and_max(fact, bounds, problems):
    assert _fact(fact, **bounds) == problems


def test_an_unknown_fact_value_fails_a_bound_instead_of_crashing():
    guest = FakeGuest(facts=BootFacts("6.1.0", "tcg", "", 0.5, None))
    step = FactAssert(name="a", line=1, fact="kpti_active", min=1)
    assert step.execute(context(guest)) == ["kpti_active is None, expected at least 1"]
    step = FactAssert(name="a", line=1, fact="kpti_active", equals=True)
    assert step.execute(context(guest)) == ["kpti_active is None, expected True"]


# ---------------------------------------------------------------- metric asserts

def _metric(samples, **kw):
    step = MetricAssert(name="assert", line=1, metric="m", **kw)
    return step.execute(context(FakeGuest(), samples=samples))


@pytest.mark.parametrize("values, bounds, problems", [
    ([1, 2, 3], {"equals": 2}, []),
    ([1, 2, 3], {"equals": 3}, ["median of m is 2, expected 3"]),
    ([1, 2, 100], {"min": 3}, ["median of m is 2, expected at least 3"]),   # the median,
    ([0, 2, 2], {"max": 1.5}, ["median of m is 2, expected at most 1.5"]),  # not a sample
    ([1, 2, 3, 4], {"min": 2.5, "max": 2.5}, []),
])
def test_a_metric_median_against_equals_min_and_max(values, bounds, problems):
    assert _metric({"m": values}, **bounds) == problems


@pytest.mark.parametrize("samples, kw, missing", [
    ({}, {"min": 1}, "m"),
    ({"m": []}, {"min": 1}, "m"),
    ({"m": [1.0]}, {"ratio_to": "base", "max": 2}, "base"),
    ({"m": [1.0], "base": []}, {"ratio_to": "base", "max": 2}, "base"),
    ({"m": [1.0]}, {"equals_metric": "other"}, "other"),
])
def test_a_metric_without_samples_in_this_boot_is_a_problem(samples, kw, missing):
    assert _metric(samples, **kw) == [f"metric {missing} has no samples yet in this boot"]


def test_equals_metric_compares_medians_and_shows_hex_for_registers():
    assert _metric({"m": [3841.0], "other": [3841.0]}, equals_metric="other") == []
    assert _metric({"m": [3841.0], "other": [3840.0, 3841.0, 3842.0]},
                   equals_metric="other") == []
    problems = _metric({"m": [3841.0], "other": [0.0]}, equals_metric="other")
    assert problems == ["m is 3841 (0xf01) but other is 0 (0x0)"]
    assert _metric({"m": [2.5], "other": [1.5]}, equals_metric="other") == [
        "m is 2.5 but other is 1.5"]


def _noisy(center, n=20, spread=0.05, seed=0):
    rng = random.Random(seed)
    return [center * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def _ratio(center, spread=0.05, **bounds):
    samples = {"m": _noisy(center, spread=spread, seed=1), "base": _noisy(100, spread=spread,
                                                                           seed=2)}
    return _metric(samples, ratio_to="base", **bounds)


def test_ratio_to_fails_when_the_whole_interval_is_past_max():
    (problem,) = _ratio(200, max=1.5)
    assert re.fullmatch(r"median m / median base = 1\.9\d\d \(95% interval 1\.9\d\d-2\.0\d\d\), "
                        r"entirely above 1\.5", problem)
    assert _ratio(200, max=2.5) == []
    assert _ratio(200, min=1.5) == []


def test_ratio_to_fails_when_the_whole_interval_is_below_min():
    (problem,) = _ratio(50, min=0.8)
    assert problem.endswith("entirely below 0.8")
    assert _ratio(50, max=0.8) == []


def test_ratio_to_passes_while_the_interval_still_reaches_the_bound():
    """Median ratio past the bound, but the noise of a shared machine does not fail it."""
    from lab.analysis import stats
    samples, base = _noisy(120, spread=0.3, seed=1), _noisy(100, spread=0.3, seed=2)
    r = stats.ratio(samples, base)
    assert r.value > 1.0 and r.ci[0] < 1.0                  # the premise of this test
    assert _metric({"m": samples, "base": base}, ratio_to="base", max=1.0) == []


# ---------------------------------------------------------------- run

def _run(output, code=0, samples=None, units=None, **kw):
    guest = FakeGuest({".": (output, code)})
    ctx = context(guest, samples=samples, units=units)
    step = Run(name="run", line=1, command=kw.pop("command", "tool"), **kw)
    return step.execute(ctx), ctx, guest


def test_run_passes_the_command_and_the_time_left_to_the_guest():
    problems, ctx, guest = _run("ok\n", command="cat /proc/cpuinfo | head -1")
    assert problems == [] and ctx.exit_code == 0
    (command, timeout), = guest.ran
    assert command == "cat /proc/cpuinfo | head -1" and 29 < timeout <= 30


def test_run_fails_on_an_unexpected_exit_code_and_attaches_the_output():
    problems, ctx, _ = _run("segfault here\n", code=139)
    assert problems == ["exit code 139, expected 0", "output:\nsegfault here\n"]
    assert ctx.exit_code == 139
    assert _run("", code=3, expect_exit=3)[0] == []
    assert _run("", code=3, expect_exit=None)[0] == []


def test_run_match_and_no_match_are_multiline_regexes():
    out = "line one\nstatus: ok\nBUG: scheduling while atomic\n"
    assert _run(out, match=r"^status: ok$")[0] == []
    problems = _run(out, match=r"^status: failed$", no_match=r"^BUG: .*")[0]
    assert problems[:2] == ["output does not match '^status: failed$'",
                            "output matches '^BUG: .*': 'BUG: scheduling while atomic'"]
    assert problems[2].startswith("output:\n")


def test_run_reads_decimal_and_hex_samples_with_units_from_the_metric_lines():
    out = ("METRIC getppid_ns 1100.5 ns\nnoise\nMETRIC getppid_ns 1200 ns\n"
           "CR 0x30 0xf01\n")
    samples, units = {"getppid_ns": [1000.0]}, {}
    metrics = (Metric("getppid_ns", r"^METRIC getppid_ns (\S+)"),
               Metric("cr", r"^CR +0x30 (0x[0-9a-f]+)$", format="hex"))
    problems, ctx, _ = _run(out, samples=samples, units=units, metrics=metrics)
    assert problems == []
    assert samples == {"getppid_ns": [1000.0, 1100.5, 1200.0], "cr": [3841.0]}
    assert units == {"getppid_ns": "ns", "cr": ""}


def test_a_declared_unit_wins_and_a_missing_one_does_not_erase_a_known_one():
    units = {"b": "KiB"}
    metrics = (Metric("a", r"^a=(\d+)", unit="us"), Metric("b", r"^b=(\d+)"))
    _run("METRIC a 5 ns\na=5\nb=7\n", units=units, metrics=metrics)
    assert units == {"a": "us", "b": "KiB"}


def test_a_metric_with_no_sample_or_not_a_number_is_a_problem():
    metrics = (Metric("present", r"^p=(\S+)"), Metric("absent", r"^a=(\S+)"),
               Metric("word", r"^w=(\S+)"))
    samples = {}
    problems, _, _ = _run("p=1\nw=lots\n", samples=samples, metrics=metrics)
    assert problems[:2] == ["metric absent: no sample in the output",
                            "metric word: 'lots' is not a number"]
    assert problems[2] == "output:\np=1\nw=lots\n"
    assert samples == {"present": [1.0]}


def test_the_output_attached_to_a_failure_is_its_tail():
    out = "HEAD" + "x" * (OUTPUT_TAIL * 2) + "TAIL"
    problems, _, _ = _run(out, code=1)
    assert problems[-1] == (f"output (last {OUTPUT_TAIL} of {len(out)} characters):\n"
                            + out[-OUTPUT_TAIL:])
    assert "TAIL" in problems[-1] and "HEAD" not in problems[-1]


def test_a_long_output_excerpt_names_the_file_that_holds_all_of_it():
    out = "x" * (OUTPUT_TAIL + 1)
    assert excerpt(out, "run/cell/step-01.out").startswith(
        f"output (last {OUTPUT_TAIL} of {OUTPUT_TAIL + 1} characters; all of it in "
        "run/cell/step-01.out):\nxx")
    assert excerpt("short\n", "run/cell/step-01.out") == "output:\nshort\n"


# ---------------------------------------------------------------- hmp, qmp

def test_hmp_matches_the_answer_and_reads_hex_registers():
    guest = FakeGuest()
    guest.hmp_answer = "0000000009000030: 0x00000f01\r\n"
    samples = {}
    step = Hmp(name="h", line=1, command="xp /1wx 0x9000030", match=r"0x[0-9a-f]{8}",
               metrics=(Metric("cr", r": (0x[0-9a-f]+)", format="hex"),))
    assert step.execute(context(guest, samples=samples)) == []
    assert guest.hmp_calls == ["xp /1wx 0x9000030"] and samples == {"cr": [3841.0]}
    step = Hmp(name="h", line=1, command="info x", match=r"^nothing",
               metrics=(Metric("cr", r"CR=(\d+)"),))
    assert step.execute(context(guest)) == ["output does not match '^nothing'",
                                            "metric cr: no sample in the output"]


def test_qmp_sends_its_arguments_and_checks_the_expected_values():
    guest = FakeGuest()
    guest.qmp_reply = {"status": "running", "running": True}
    step = Qmp(name="q", line=1, command="query-status", args=(("verbose", True),),
               expect=(("running", True), ("status", "running")))
    assert step.execute(context(guest)) == []
    assert guest.qmp_calls == [("query-status", {"verbose": True})]
    step = Qmp(name="q", line=1, command="query-status",
               expect=(("running", False), ("status", "paused"), ("singlestep", False)))
    assert step.execute(context(guest)) == ["running: got True, expected False",
                                            "status: got 'running', expected 'paused'",
                                            "singlestep: got None, expected False"]


def test_qmp_expecting_keys_of_a_reply_that_is_no_mapping_shows_the_reply():
    guest = FakeGuest()
    guest.qmp_reply = [{"cpu-index": 0}]
    step = Qmp(name="q", line=1, command="query-cpus-fast", expect=(("cpu-index", 0),))
    assert step.execute(context(guest)) == ["cpu-index: got [{'cpu-index': 0}], expected 0"]


# ---------------------------------------------------------------- module, put

@pytest.mark.parametrize("kw, command", [
    ({"load": "pl011_lab"}, "modprobe pl011_lab"),
    ({"load": "pl011_lab", "args": "debug=1 fifo=16"}, "modprobe pl011_lab debug=1 fifo=16"),
    ({"load": "/lib/modules/lab/pl011_lab.ko"}, "insmod /lib/modules/lab/pl011_lab.ko"),
    ({"load": "/tmp/my mod.ko", "args": "x=1"}, "insmod '/tmp/my mod.ko' x=1"),
    ({"load": "a;reboot"}, "modprobe 'a;reboot'"),
    ({"unload": "pl011_lab"}, "rmmod pl011_lab"),
    ({"unload": "$(reboot)"}, "rmmod '$(reboot)'"),
])
def test_module_builds_modprobe_insmod_and_rmmod_with_shell_quoting(kw, command):
    step = Module(name="m", line=1, **kw)
    assert step.command() == command
    guest = FakeGuest()
    ctx = context(guest)
    assert step.execute(ctx) == [] and guest.ran[0][0] == command and ctx.exit_code == 0


def test_module_failure_says_the_exit_code_and_what_the_tool_said():
    guest = FakeGuest({"modprobe": ("modprobe: module nope not found\n", 1)})
    ctx = context(guest)
    assert Module(name="m", line=1, load="nope").execute(ctx) == [
        "exit code 1: modprobe: module nope not found"]
    assert ctx.exit_code == 1


def test_put_copies_the_file_with_its_mode(tmp_path):
    src = tmp_path / "tool.sh"
    src.write_bytes(b"#!/bin/sh\necho hi\n")
    guest = FakeGuest()
    step = Put(name="p", line=1, src=(("", src),), dest="/bin/tool", mode=0o755)
    assert step.execute(context(guest)) == []
    assert guest.files == [(b"#!/bin/sh\necho hi\n", "/bin/tool", 0o755)]


# ---------------------------------------------------------------- uart

def test_uart_expect_sends_then_fails_with_what_it_got_instead():
    guest = FakeGuest()
    guest.fake_uart.received = b"hello from the guest\n"
    ok = UartExpect(name="u", line=1, send="ping\n", expect=r"hello \w+")
    assert ok.execute(context(guest)) == [] and guest.fake_uart.sent == [b"ping\n"]
    (problem,) = UartExpect(name="u", line=1, expect="bye").execute(context(guest, seconds=2))
    assert problem.startswith("the UART did not send 'bye' within 2 s")
    assert "hello from the guest" in problem


def test_uart_transfer_records_kib_per_second_and_reports_a_bad_transfer():
    guest = FakeGuest()
    guest.fake_uart.transfers = [FakeTransfer(True, 0.5), FakeTransfer(False, 0, "md5 differs"),
                                 FakeTransfer(True, 0.25)]
    samples, units = {}, {}
    step = UartTransfer(name="t", line=1, direction="host-to-guest", device="/dev/ttyAMA0",
                        nbytes=65536, count=3, metric="h2g")
    assert step.execute(context(guest, samples, units)) == ["transfer 2: md5 differs"]
    assert samples == {"h2g": [128.0, 256.0]} and units == {"h2g": "KiB/s"}
    assert guest.fake_uart.moved == [("in", "/dev/ttyAMA0", 65536)] * 3



def test_a_monitor_that_refuses_a_command_fails_the_step_with_qemus_words():
    from lab.core.errors import MonitorError
    guest = FakeGuest()
    guest.hmp_answer = MonitorError("HMP 'xp /1wx 0x7fffffffff00' failed: Cannot access memory")
    step = Hmp(name="h", line=1, command="xp /1wx 0x7fffffffff00")
    assert step.execute(context(guest)) == [
        "HMP 'xp /1wx 0x7fffffffff00' failed: Cannot access memory"]
    guest.qmp_reply = MonitorError("QMP qom-get failed: Property 'x' not found")
    q = Qmp(name="q", line=1, command="qom-get", args=(("timeout", 1), ("property", "x")))
    assert q.execute(context(guest)) == ["QMP qom-get failed: Property 'x' not found"]
    assert guest.qmp_calls[-1] == ("qom-get", {"timeout": 1, "property": "x"})   # a QMP name


def test_a_monitor_that_does_not_answer_is_an_error_not_a_failure():
    from lab.core.errors import InfraError
    guest = FakeGuest()
    guest.hmp_answer = InfraError("QMP human-monitor-command: no answer within 10 s")
    with pytest.raises(InfraError):
        Hmp(name="h", line=1, command="info status").execute(context(guest))
