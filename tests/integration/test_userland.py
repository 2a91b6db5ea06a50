"""The guest is a proper Linux userland (issue 17), on real guests of both arches:
orphans never end it, a bare `exit N` ends only the shell, /dev is complete, bash
and busybox's links are there, lo is up, each step's whole output is kept, host
files arrive in the initramfs, and parallel labs never race over run directories."""

import hashlib
import json
import subprocess
import threading

import pytest

from tests.conftest import LAB, ROOT, lab

pytestmark = pytest.mark.qemu
ARCHES = ["aarch64", "x86_64"]
ORPHAN_ROUNDS = 20


def userland_scenario(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.sh").write_text("#!/bin/bash\necho \"hello from ${BASH_VERSION%%.*}\"\n")
    (data / "hello.sh").chmod(0o755)
    steps = []
    for n in range(ORPHAN_ROUNDS):     # the orphan ends while the shell waits for the next step
        steps += [f"  - {{name: orphan-{n}, run: \"sh -c 'sleep 0.2 &' ; true\"}}\n",
                  f"  - {{name: after-{n}, run: 'sleep 1; echo alive', match: '^alive$'}}\n"]
    steps += [
        "  - {name: exit, run: 'cd /tmp; X=set; echo bye; exit 7', expect_exit: 7}\n",
        "  - {name: fresh-shell, run: 'echo \"$(pwd) [$X]\"', match: '^/ \\[\\]$'}\n",
        "  - {name: dev, run: 'echo hi > /dev/stdout; ls /dev/fd/ /dev/shm /dev/pts',"
        " match: '^hi$'}\n",
        "  - {name: bash, run: '/opt/data/hello.sh', match: '^hello from 5$'}\n",
        "  - {name: sysctl, run: 'cat /proc/sys/vm/overcommit_memory', match: '^1$'}\n",
        # init's set-up: the host name, lo up (IFF_UP|IFF_LOOPBACK), and every link
        # `busybox --install` makes (the image has them) but linuxrc
        "  - {name: setup, run: 'echo $(hostname) $(cat /sys/class/net/lo/flags)"
        " $(busybox --list-full | while read p; do [ -e /$p ] || echo $p; done"
        " | grep -vc ^linuxrc$)', match: '^lab 0x9 0$'}\n",
        "  - {name: big, when: {arch: aarch64}, timeout: 120,"
        " run: 'head -c 5000000 /dev/zero | tr \"\\\\0\" a; echo; echo end'}\n",
    ]
    path = tmp_path / "userland.yaml"
    path.write_text("name: userland\nmatrix: {arch: [aarch64, x86_64], kernel: [nokpti]}\n"
                    "files: [{src: data, dest: /opt/data}]\n"
                    "sysctl: {vm.overcommit_memory: 1}\n"
                    "timeouts: {step: 30}\n"
                    "steps:\n" + "".join(steps))
    return path


@pytest.fixture(scope="module")
def userland(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("userland")
    out = tmp / "out"
    result = lab("run", str(userland_scenario(tmp)), "--out", str(out), "-j", "2")
    return out, result, json.loads((out / "results.json").read_text())


def steps_of(results, arch):
    (cell,) = [c for c in results["cells"] if c["arch"] == arch]
    return cell, {s["name"]: s for s in cell["steps"]}


@pytest.mark.parametrize("arch", ARCHES)
def test_orphans_exits_and_dev_in_a_scenario_pass_and_the_guest_lives(userland, arch):
    out, result, results = userland
    cell, steps = steps_of(results, arch)
    assert cell["status"] == "pass", result.stdout + result.stderr
    for n in range(ORPHAN_ROUNDS):
        assert steps[f"orphan-{n}"]["status"] == steps[f"after-{n}"]["status"] == "pass"
    exited = steps["exit"]
    assert exited["exit_code"] == 7 and "ended the lab's shell (exit status 7)" in \
        exited["message"] and "reset" in exited["message"]
    assert (out / exited["output"]).read_text() == "bye\n"
    assert not cell["faults"]
    assert "lab-init: the lab's shell exited with status 7" in (out / cell["logs"]["console"]
                                                                 ).read_text()


def test_a_step_that_prints_5_mb_has_all_of_it_in_its_own_file(userland):
    out, _, results = userland
    _, steps = steps_of(results, "aarch64")
    kept = out / steps["big"]["output"]
    assert kept.name.endswith(".out") and kept.stat().st_size == 5_000_000 + len("\nend\n")
    assert kept.read_bytes() == b"a" * 5_000_000 + b"\nend\n"


#: For each filesystem init can do without: "TYPE KERNEL-HAS-IT MOUNTED" (1 or 0).
OPTIONAL_MOUNTS = ("for t in devpts debugfs hugetlbfs; do "
                   "printf '%s %d %d\\n' $t $(grep -c \"\t$t\\$\" /proc/filesystems) "
                   "$(grep -c \" $t \" /proc/mounts); done")


@pytest.mark.parametrize("arch", ARCHES)
def test_exec_has_the_usual_dev_and_bash(arch):
    r = lab("exec", "--arch", arch, "--kernel", "nokpti", "--",
            "sh", "-c", "echo hi > /dev/stdout; ls /dev/fd/ /dev/shm /dev/pts")
    assert r.returncode == 0 and r.stdout.startswith("hi\n"), r.stderr
    # init mounts an optional filesystem exactly when the kernel has it (mounting one
    # it lacks makes the kernel run modprobe first, tens of ms of every boot)
    r = lab("exec", "--arch", arch, "--kernel", "nokpti", "--", "sh", "-c", OPTIONAL_MOUNTS)
    assert r.returncode == 0, r.stderr
    seen = {t: (has, mounted) for t, has, mounted in (line.split() for line in
                                                       r.stdout.splitlines())}
    assert seen == {"devpts": ("1", "1"), "debugfs": ("1", "1"),
                    "hugetlbfs": ("0", "0")}, r.stdout
    r = lab("exec", "--arch", arch, "--kernel", "nokpti", "--",
            "bash", "-c", "echo ${BASH_VERSION}")
    assert r.returncode == 0 and r.stdout.startswith("5."), r.stderr
    # init always has stdio: the console, or /dev/kmsg when the kernel could not open
    # the console in time (aarch64's hvc0 registers late), so its messages are logged
    r = lab("exec", "--arch", arch, "--kernel", "nokpti", "--",
            "sh", "-c", "for fd in 0 1 2; do readlink /proc/1/fd/$fd; done")
    assert r.returncode == 0 and len(r.stdout.split()) == 3, (r.stdout, r.stderr)
    assert all(fd in ("/dev/console", "/dev/kmsg") for fd in r.stdout.split()), r.stdout


@pytest.mark.parametrize("arch", ARCHES)
def test_a_100_mb_file_reaches_a_512_mb_guest_intact(tmp_path, arch):
    big = tmp_path / "big"
    data = bytes(range(256)) * 4096 * 100            # 100 MiB, not all one byte
    big.write_bytes(data)
    r = lab("exec", "--json", "--arch", arch, "--kernel", "nokpti", "--memory", "512",
            "--add", f"{big}:/opt/x/big", "--", "md5sum", "/opt/x/big")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["output"].split()[0] == hashlib.md5(data).hexdigest()
    plain = json.loads(lab("exec", "--json", "--arch", arch, "--kernel", "nokpti",
                           "--memory", "512", "--", "true").stdout)
    print(f"{arch}: boot {plain['boot']['boot_s']:.2f} s, with 100 MiB added "
          f"{answer['boot']['boot_s']:.2f} s")


def test_parallel_runs_and_another_labs_sweeps_never_race(tmp_path):
    """8 cells at -j4, twice, while other labs start (and sweep run directories)."""
    path = tmp_path / "race.yaml"
    path.write_text("name: race\nmatrix:\n  arch: [aarch64, x86_64]\n  kernel: [nokpti]\n"
                    "  cmdline: {a: '', b: quiet, c: loglevel=4, d: loglevel=5}\n"
                    "steps: [{run: 'echo ok', match: '^ok$'}]\n")
    stop = threading.Event()
    others: list[int] = []

    def other_labs():
        while not stop.is_set():
            others.append(subprocess.run([*LAB, "exec", "--arch", "x86_64", "--kernel",
                                          "nokpti", "--", "true"], cwd=ROOT,
                                         capture_output=True).returncode)

    thread = threading.Thread(target=other_labs)
    thread.start()
    try:
        for n in range(2):
            r = lab("run", str(path), "--out", str(tmp_path / f"out{n}"), "-j", "4")
            assert r.returncode == 0, r.stdout + r.stderr
            results = json.loads((tmp_path / f"out{n}" / "results.json").read_text())
            assert len(results["cells"]) == 8
            assert {c["status"] for c in results["cells"]} == {"pass"}
    finally:
        stop.set()
        thread.join()
    assert others and set(others) == {0}
