"""Issue 16, the classes decided before anything boots (1-4, 9-12): every bad
input is refused with one line naming the file and line (or the option), exit
code 2, no traceback, and nothing created on the host: no --out directory, no
cache entry. Each refusal's time is printed (`pytest -s`); bench/refusal.py
gives the table per class.

Every CLI test runs the lab with an empty cache and a kernel tree that does not
exist, so that a check that regressed could never build or boot anything.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from lab.app import htmlreport, report
from lab.artifacts import kconfig
from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import Cell, HostFacts
from lab.core.results import BootResult, CellResult, RunResult, Status, StepResult
from lab.scenario import scenario
from lab.scenario.steps import hmp
from tests.badinputs import HEAD, corpus_class, encodings, make
from tests.unit.inprocess import lab
from tests.unit.test_scenario import BAD, expectation


def safe_env(tmp_path: Path) -> dict[str, str]:
    return {"LAB_CACHE": str(tmp_path / "cache"), "LAB_KERNEL_SRC": str(tmp_path / "no-src"),
            "COLUMNS": "200"}


def refused(tmp_path: Path, *args: str) -> str:
    """Runs `lab ARGS`; checks the refusal rule; returns its one line."""
    started = time.perf_counter()
    result = lab(*args, env=safe_env(tmp_path), timeout=60)
    elapsed = time.perf_counter() - started
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    print(f"\n{elapsed * 1000:6.0f} ms  lab {' '.join(args)[:60]}  ->  {lines[0][:100]}")
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def loads(tmp_path: Path, steps: str, name: str = "s.yaml", **kw) -> scenario.Scenario:
    return scenario.load(write(tmp_path / name, HEAD + "steps:\n" + steps), **kw)


def refusal(path: Path, **kw) -> str:
    with pytest.raises(UserError) as err:
        scenario.load(path, **kw)
    return str(err.value)


# ---------------------------------------------------------------- the corpus, by class

ONE_PER_CLASS: dict[str, Path] = {}
for _path in BAD:
    ONE_PER_CLASS.setdefault(corpus_class(_path), _path)


def test_the_corpus_has_every_class():
    assert set(ONE_PER_CLASS) >= {"schema", "monitor", "fragment", "put", "names", "yaml",
                                  "numbers"}


@pytest.mark.parametrize("path", ONE_PER_CLASS.values(), ids=ONE_PER_CLASS.keys())
def test_lab_run_refuses_one_of_each_class_and_creates_nothing(path, tmp_path):
    line, message = expectation(path)
    got = refused(tmp_path, "run", str(path), "--out", str(tmp_path / "out"))
    assert got.startswith(f"lab: error: {path}:{line}: {message}")


# ---------------------------------------------------------------- generated cases

@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return {c.name: c for c in make(tmp_path_factory.mktemp("bad"))}


CASES = [c.name for c in encodings()] + [
    "latin1-fragment.config", "binary-fragment.config", "64-MiB-file", "40k-nodes",
    "fifo-scenario", "put-symlink", "put-symlinked-dir", "put-fifo", "put-dev-zero-allowed",
    "put-over-1MiB"]


@pytest.mark.parametrize("name", CASES)
def test_generated_bad_input_is_refused_with_file_and_line(name, generated):
    case = generated[name]
    started = time.perf_counter()
    message = refusal(case.path, allow=case.allow)
    print(f"\n{(time.perf_counter() - started) * 1000:7.1f} ms  {name}: {message[:120]}")
    assert message.startswith(f"{case.path}{case.expect}")
    assert "\n" not in message


@pytest.mark.parametrize("name", ["png", "utf-16", "fifo-scenario", "put-symlink"])
def test_lab_run_refuses_generated_input(name, generated, tmp_path):
    case = generated[name]
    line = refused(tmp_path, "run", str(case.path), "--out", str(tmp_path / "out"))
    assert line.startswith(f"lab: error: {case.path}{case.expect}")


# ---------------------------------------------------------------- 1. monitor

def test_read_only_monitor_commands_load(tmp_path):
    s = loads(tmp_path, "  - qmp: {command: query-status, expect: {status: running}}\n"
                        "  - qmp: {command: qom-get, args: {path: /machine, property: type}}\n"
                        "  - qmp: {command: qom-list, args: {path: /machine}}\n"
                        "  - hmp: xp /4wx 0x9000030\n"
                        "  - hmp: '  xp/1wx 0x9000030'\n"
                        "  - hmp: x /2i $pc\n"
                        "  - hmp: info registers\n"
                        "  - hmp: info mtree -f\n"
                        "  - hmp: p $pc\n")
    assert [st.kind for st in s.steps] == ["qmp"] * 3 + ["hmp"] * 6


@pytest.mark.parametrize("command", [
    "migrate", "migrate-incoming", "pmemsave", "memsave", "dump-guest-memory", "screendump",
    "human-monitor-command", "device_add", "object-add", "blockdev-add", "drive-mirror",
    "drive-backup", "chardev-add", "getfd", "add-fd", "netdev_add", "quit", "stop", "cont",
    "system_reset", "system_powerdown", "qom-set", "x-exit-preconfig", "Query-status",
    " query-status", "query-status ", "query_status"])
def test_qmp_refuses_anything_but_reading(command, tmp_path):
    path = write(tmp_path / "q.yaml", HEAD + f"steps:\n  - qmp: {{command: '{command}'}}\n")
    message = refusal(path)
    assert f":4: steps[0].qmp.command: QMP command {command!r} is not allowed" in message
    assert "allowed: query-*, qom-get, qom-list, qom-list-types" in message


@pytest.mark.parametrize("key", ["Path", "a b", "x;y"])
def test_qmp_arguments_are_qmp_names(key, tmp_path):
    path = write(tmp_path / "q.yaml", HEAD + "steps:\n  - qmp: {command: qom-get, args: "
                                             f"{{'{key}': 1, property: type}}}}\n")
    assert f":4: steps[0].qmp.args: {key!r} is not a QMP argument name" in refusal(path)


@pytest.mark.parametrize("command, why", [
    ("quit", "HMP command 'quit' is not allowed"),
    ("\tquit", "control character '\\t'"),        # Fields refuses it before HMP sees it
    ("stop", "'stop' is not allowed"),
    ("system_reset", "'system_reset' is not allowed"),
    ('migrate "exec:touch /tmp/lab-pwned"', "'migrate' is not allowed"),
    ("pmemsave 0 16 /tmp/x", "'pmemsave' is not allowed"),
    ("memsave 0 16 /tmp/x", "'memsave' is not allowed"),
    ("dump-guest-memory /tmp/x", "'dump-guest-memory' is not allowed"),
    ("screendump /tmp/x.ppm", "'screendump' is not allowed"),
    ("chardev-add socket,id=x,path=/tmp/s,server=on", "'chardev-add' is not allowed"),
    ("drive_add 0 file=/etc/shadow", "'drive_add' is not allowed"),
    ("o /b 0x3f8 0x41", "'o' is not allowed"),
    ("i /b 0x3f8", "'i' is not allowed"),
    ("sendkey ctrl-alt-delete", "'sendkey' is not allowed"),
    ("XP /1wx 0", "'XP' is not allowed"),
    ("Info registers", "'Info' is not allowed"),
    ("info usbhost", "'info usbhost' is not allowed"),
    ("info", "'info ' is not allowed"),
    ("info registers; quit", "';' is not allowed"),
    ("xp\u00a0/1wx 0", "an HMP command is ASCII text"),
    ("x /100000wx 0", "x reads at most 4096 units at once, got 100000"),
    ("   ", "no HMP command"),
])
def test_hmp_refuses_anything_but_reading(command, why, tmp_path):
    path = write(tmp_path / "h.yaml", HEAD + "steps:\n  - hmp: " + json.dumps(command) + "\n")
    message = refusal(path)
    assert message.startswith(f"{path}:4: steps[0].hmp: ") and why in message, message


def test_the_hmp_allow_list_names_the_allowed_commands():
    assert "allowed: info SUBCOMMAND, x, xp, p, print" in hmp.refusal("quit")


# ---------------------------------------------------------------- 2. fragments

@pytest.mark.parametrize("value, bad", [
    ('"`touch /tmp/lab-pwned`"', "`"), ('"$(shell id)"', "$"), ('"${HOME}"', "$"),
    ('"a;b"', ";"), ('"a|b"', "|"), ('"a&b"', "&"), ('"a<b"', "<"), ('"a>b"', ">"),
    ('"a\\\\b"', "\\"), ('"a"b"', '"'), ("\"a'b\"", "'"), ('"#x"', "#"), ('"a\rb"', "\r"),
    ('"a\x00b"', None), ("$(id)", "$"), ("y;id", ";"), ("`id`", "`"),
])
def test_a_fragment_value_with_a_metacharacter_is_refused(value, bad, tmp_path):
    frag = tmp_path / "f.config"
    frag.write_bytes(f"CONFIG_A=y\nCONFIG_LOCALVERSION={value}\n".encode())
    with pytest.raises(UserError) as err:
        kconfig.parse_fragment(frag)
    if bad is None:     # NUL: a binary file
        assert str(err.value).startswith(f"{frag}:2: (file): a NUL byte")
        return
    assert str(err.value).startswith(f"{frag}:2: CONFIG_LOCALVERSION: the value ")
    assert f"holds {bad!r}" in str(err.value)


@pytest.mark.parametrize("option", [
    "INITRAMFS_SOURCE", "EXTRA_FIRMWARE", "EXTRA_FIRMWARE_DIR", "MODULE_SIG_KEY",
    "SYSTEM_TRUSTED_KEYS", "SYSTEM_REVOCATION_KEYS", "UNUSED_KSYMS_WHITELIST",
    "BUILTIN_DTB_SOURCE", "MODULE_SIG_HASH"])
def test_only_a_few_string_options_may_be_set(option, tmp_path):
    frag = write(tmp_path / "f.config", f'CONFIG_{option}="certs/x.pem"\n')
    with pytest.raises(UserError, match=rf"f.config:1: CONFIG_{option}: a fragment may not set "
                                        r"this string option; the string options allowed: "
                                        r"CONFIG_LOCALVERSION, "):
        kconfig.parse_fragment(frag)
    write(frag, f"CONFIG_{option}=certs/x.pem\n")       # unquoted: no way round
    with pytest.raises(UserError, match="is not y, m, n, a number or a quoted string"):
        kconfig.parse_fragment(frag)


def test_allowed_values_pass(tmp_path):
    frag = write(tmp_path / "f.config", 'CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=n\nCONFIG_D=-3\n'
                                        'CONFIG_E=0x1F\nCONFIG_LOCALVERSION="-lab.1+x"\n'
                                        'CONFIG_CMDLINE="console=ttyS0,115200 ip=10.0.0.2:::"\n'
                                        'CONFIG_DEFAULT_HOSTNAME="lab-1"\n'
                                        'CONFIG_DEFAULT_INIT="/sbin/init"\nCONFIG_LOCALVERSION=""\n')
    assert len(kconfig.parse_fragment(frag)) == 10


def test_lab_build_refuses_a_fragment_before_building(tmp_path):
    frag = write(tmp_path / "evil.config", 'CONFIG_INITRAMFS_SOURCE="`touch /tmp/lab-pwned`"\n')
    line = refused(tmp_path, "build", "--arch", "aarch64", "--kernel", str(frag))
    assert line.startswith(f"lab: error: {frag.resolve()}:1: CONFIG_INITRAMFS_SOURCE: ")


def test_lab_exec_refuses_a_binary_fragment(tmp_path):
    frag = tmp_path / "bin.config"
    frag.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\xff" * 8)
    line = refused(tmp_path, "exec", "--arch", "x86_64", "--kernel", str(frag), "--", "true")
    assert line == (f"lab: error: {frag.resolve()}:1: (file): not UTF-8 text: byte 0xff at "
                    "offset 16")


# ---------------------------------------------------------------- 3. put

def test_put_reads_the_scenario_directory_and_what_the_user_allows(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "blob").write_bytes(b"x")
    s = loads(tmp_path, "  - put: {src: data/../data/blob, dest: /tmp/b}\n")
    assert s.steps[0].src == (("", (tmp_path / "data" / "blob").resolve()),)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"y")
    inner = tmp_path / "inner"
    inner.mkdir()
    path = write(inner / "s.yaml", HEAD + "steps:\n  - put: {src: ../outside/f, dest: /tmp/f}\n")
    assert "outside the scenario's directory" in refusal(path)
    assert scenario.load(path, allow=(outside,)).steps[0].src == (("", (outside / "f").resolve()),)


def test_lab_run_allow_put_from_lets_a_put_through(tmp_path):
    inner, outside = tmp_path / "inner", tmp_path / "outside"
    inner.mkdir()
    outside.mkdir()
    (outside / "f").write_bytes(b"y")
    path = write(inner / "s.yaml", HEAD + "steps:\n  - put: {src: ../outside/f, dest: /tmp/f}\n")
    not_a_dir = write(tmp_path / "file", "")
    line = refused(tmp_path, "run", str(path), "--out", str(tmp_path / "out"))
    assert line.startswith(f"lab: error: {path}:4: steps[0].put.src: '../outside/f' is ")
    # With the flag the put loads; the run stops at the next check, the bad --out.
    line = refused(tmp_path, "run", str(path), "--allow-put-from", str(outside),
                   "--out", str(not_a_dir / "out"))
    assert line == f"lab: error: --out {not_a_dir / 'out'}: {not_a_dir} is not a directory"
    assert refused(tmp_path, "run", str(path), "--allow-put-from", str(tmp_path / "nope")) == \
        f"lab: error: --allow-put-from {tmp_path / 'nope'}: not a directory"


def test_put_rereads_the_file_as_it_was_checked(tmp_path):
    (tmp_path / "blob").write_bytes(b"x")
    step = loads(tmp_path, "  - put: {src: blob, dest: /tmp/b}\n").steps[0]
    (tmp_path / "blob").unlink()
    (tmp_path / "blob").symlink_to("/etc/passwd")       # swapped after the load

    class Guest:
        def put_file(self, data, path, mode, deadline=None):
            raise AssertionError("a swapped file reached the guest")

    with pytest.raises(UserError, match="cannot read put source"):
        step.execute(type("Ctx", (), {"guest": Guest(), "arch": "aarch64"})())


# ---------------------------------------------------------------- 4. names

def test_a_kernel_fragment_is_named_by_its_stem(tmp_path):
    (tmp_path / "frags").mkdir()
    write(tmp_path / "frags" / "mine.config", "CONFIG_KALLSYMS=y\n")
    s = scenario.load(write(tmp_path / "s.yaml", "name: s\nmatrix: {arch: aarch64, kernel: "
                                                 "[nokpti, ../" + tmp_path.name +
                                                 "/frags/mine.config]}\nsteps:\n"
                                                 "  - {run: 'true', when: {kernel: mine}}\n"))
    assert [c.id for c in s.cells] == ["aarch64-nokpti-default", "aarch64-mine-default"]
    assert [c.id for c in s.cells if s.steps[0].applies(c)] == ["aarch64-mine-default"]


def test_two_scenarios_of_one_run_may_not_share_a_name(tmp_path):
    a = write(tmp_path / "a.yaml", HEAD + "steps: [{run: 'true'}]\n")
    b = write(tmp_path / "b.yaml", HEAD + "steps: [{run: 'true'}]\n")
    with pytest.raises(UserError) as err:
        scenario.load_all([str(a), str(b)])
    assert str(err.value) == (f"{b}:1: name: 'a' is also the name of {a}: their results "
                              "would share one directory")


@pytest.mark.parametrize("name", ["a", "x86_64-kpti", "v1.2", "A-b_c.d"])
def test_good_names(name):
    assert inputs.name_problem(name) is None


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "/abs", "a/b", "a..b", "-x", ".x",
                                  "[red]x", "a b", "a\nb", "é", "x" * 65])
def test_bad_names(name):
    assert inputs.name_problem(name)


def _results(name: str) -> RunResult:
    cell = Cell("aarch64", name, name, ())
    boot = BootResult(0, steps=[StepResult(f"step {name}", "run", 0, Status.FAIL,
                                           message=f"output [/] {name}")],
                      samples={"m": [1.0]}, logs={"console": f"{name}/console.log"})
    return RunResult([{"name": name}], HostFacts(), 1, "wallclock",
                     [CellResult(cell, name, boots=[boot])])


@pytest.mark.parametrize("name", ["[bold]x[/bold", "a/[/]b", "[red]", ":smile: [link=x]"])
def test_user_strings_are_printed_as_they_are(name, tmp_path, monkeypatch):
    """Names come from results.json files and users: rich must not read them as markup."""
    for console in ("out", "err"):
        monkeypatch.setattr(getattr(report, console), "file", io.StringIO())
    results = _results(name)
    report.run_summary(results, tmp_path)
    report.run_end(results, tmp_path, None, [], htmlreport.failures(results))
    report.driver_verdict(results, tmp_path)
    report.error(f"bad {name}")
    printed = report.out.file.getvalue() + report.err.file.getvalue()
    assert name in printed and f"output [/] {name}" in printed and f"bad {name}" in printed


def test_the_driver_verdict_says_why_its_first_step_failed(tmp_path, monkeypatch):
    """lab driver ends with its verdict alone: where it failed, and why (the kernel's
    report a check found), not only the step's name."""
    monkeypatch.setattr(report.out, "file", io.StringIO())
    report.driver_verdict(_results("leak"), tmp_path)
    printed = report.out.file.getvalue()
    assert "first failure at step 'step leak'" in printed and "output [/] leak" in printed


@pytest.mark.parametrize("name", ["[bold]k[/", "$x", "a$b$c_{", "$\\nosuch{$"])
def test_lab_compare_prints_names_from_results_as_text(name, tmp_path):
    """results.json is any file a user hands over: its names reach rich and matplotlib."""
    results = _results(name)
    base = CellResult(Cell("aarch64", "nokpti", "default", ()), "s",
                      boots=[BootResult(0, samples={"m": [2.0, 2.0, 2.0]})])
    results.cells = [base, results.cells[0]]
    results.cells[1].boots[0].samples = {"m": [1.0, 1.0, 1.0]}
    (tmp_path / "results.json").write_text(json.dumps(results.to_json()))
    result = lab("compare", str(tmp_path), "--baseline", "kernel=nokpti",
                 env={"COLUMNS": "200"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert name in result.stdout


# ---------------------------------------------------------------- 9. bounds on the loader

def test_the_size_bound_is_checked_before_reading(tmp_path):
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(16 << 30)            # sparse: 16 GiB that would take minutes to read
    started = time.perf_counter()
    assert refusal(huge) == (f"{huge}: cannot read scenario: 17,179,869,184 bytes, over the "
                             "bound of 1,048,576")
    assert time.perf_counter() - started < 2


def test_steps_are_counted_before_they_are_expanded(tmp_path):
    started = time.perf_counter()
    message = refusal(write(tmp_path / "r.yaml", HEAD + "steps:\n"
                            "  - rounds: 10000\n    steps:\n"
                            "      - rounds: 10000\n        steps:\n"
                            "          - rounds: 10000\n            steps: [{run: 'true'}]\n"))
    assert "10,000 rounds of 10,000 step(s) make 100,000,000 steps" in message
    assert time.perf_counter() - started < 5        # not 10^12 steps in memory


def test_lab_run_repeat_counts_with_the_steps(tmp_path):
    path = write(tmp_path / "s.yaml", HEAD + "steps:\n  - rounds: 20\n"
                                             "    steps: [{run: 'true'}]\n")
    line = refused(tmp_path, "run", str(path), "--repeat", "1000", "--out", str(tmp_path / "out"))
    assert line == (f"lab: error: --repeat 1000: {path}: 1000 boot(s) of 20 step(s) make "
                    "20,000 steps per cell, over the bound of 10,000")


# ---------------------------------------------------------------- 10. numbers (CLI)

@pytest.mark.parametrize("args, message", [
    (["run", "{s}", "-j", "-1"], "--jobs -1: must be at least 1, got -1"),
    (["run", "{s}", "-j", "0"], "--jobs 0: must be at least 1, got 0"),
    (["run", "{s}", "-j", "65"], "--jobs 65: must be at most 64, got 65"),
    (["run", "{s}", "-j", "1" + "0" * 100], "--jobs 100000... (101 digits): must be at most 64"),
    (["run", "{s}", "-j", "two"], "--jobs 'two': not an integer"),
    (["run", "{s}", "--repeat", "0"], "--repeat 0: must be at least 1, got 0"),
    (["run", "{s}", "--repeat", "1001"], "--repeat 1001: must be at most 1000, got 1001"),
    (["build", "-j", "0"], "--jobs 0: must be at least 1, got 0"),
    (["build", "-j", "-5"], "--jobs -5: must be at least 1, got -5"),
    (["exec", "--arch", "aarch64", "--kernel", "nokpti", "--timeout", "nan", "--", "true"],
     "--timeout nan: must be a finite number, got nan"),
    (["exec", "--arch", "aarch64", "--kernel", "nokpti", "--timeout", "inf", "--", "true"],
     "--timeout inf: must be a finite number, got inf"),
    (["exec", "--arch", "aarch64", "--kernel", "nokpti", "--timeout", "1e999", "--", "true"],
     "--timeout 1e999: must be a finite number, got inf"),
    (["exec", "--arch", "aarch64", "--kernel", "nokpti", "--timeout", "0", "--", "true"],
     "--timeout 0: must be positive, got 0"),
    (["exec", "--arch", "aarch64", "--kernel", "nokpti", "--timeout", "-1", "--", "true"],
     "--timeout -1: must be positive, got -1"),
    (["exec", "--arch", "aarch64", "--kernel", "nokpti", "--timeout", "86401", "--", "true"],
     "--timeout 86401: must be at most 86400, got 86401"),
])
def test_numeric_options_are_bounded(args, message, tmp_path):
    s = write(tmp_path / "s.yaml", HEAD + "steps: [{run: 'true'}]\n")
    args = [str(s) if a == "{s}" else a for a in args]
    assert refused(tmp_path, *args, *(["--out", str(tmp_path / "out")] if args[0] == "run"
                                      else [])).startswith(f"lab: error: {message}")


# ---------------------------------------------------------------- 11. paths

@pytest.fixture
def a_file(tmp_path):
    return write(tmp_path / "a-file", "x")


def test_out_must_be_a_directory_the_lab_can_write(tmp_path, a_file):
    s = str(write(tmp_path / "s.yaml", HEAD + "steps: [{run: 'true'}]\n"))
    assert refused(tmp_path, "run", s, "--out", str(a_file)) == \
        f"lab: error: --out {a_file}: exists and is not a directory"
    assert refused(tmp_path, "run", s, "--out", str(a_file / "x" / "y")) == \
        f"lab: error: --out {a_file / 'x' / 'y'}: {a_file} is not a directory"
    assert refused(tmp_path, "run", s, "--out", "/proc/lab-x/y").startswith(
        "lab: error: --out /proc/lab-x/y: cannot create a directory in /proc: ")
    assert refused(tmp_path, "driver", str(tmp_path), "--scenario", s, "--out", str(a_file)) == \
        f"lab: error: --out {a_file}: exists and is not a directory"


@pytest.mark.parametrize("command", ["exec", "shell"])
def test_logs_must_be_a_directory_the_lab_can_write(command, tmp_path, a_file):
    args = [command, "--arch", "aarch64", "--kernel", "nokpti", "--logs", str(a_file / "logs")]
    assert refused(tmp_path, *args, *(["--", "true"] if command == "exec" else [])) == \
        f"lab: error: --logs {a_file / 'logs'}: {a_file} is not a directory"


def test_compare_and_driver_name_a_missing_directory(tmp_path):
    missing = tmp_path / "missing"
    assert refused(tmp_path, "compare", str(missing)) == \
        f"lab: error: {missing}: cannot read results: No such file or directory"
    assert refused(tmp_path, "driver", str(missing)) == \
        f"lab: error: DRIVER_DIR {missing}: not a directory"


def test_dir_problem_probes_for_real(tmp_path, a_file):
    assert inputs.dir_problem(tmp_path / "new" / "deeper") is None
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".lab-probe-*"))
    assert inputs.dir_problem(a_file) == "exists and is not a directory"
    assert inputs.dir_problem(Path("/proc/self/x")).startswith("cannot create a directory in")

