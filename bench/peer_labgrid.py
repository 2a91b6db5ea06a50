"""One labgrid session for bench/peer.py: run by the labgrid venv's python, never the lab's.

    python peer_labgrid.py < CONFIG_JSON

CONFIG_JSON, on stdin (no QEMU path in this process's argv): {qemu, machine, cpu,
memory, extra_args, kernel, boot_args, prompt, rtts, outputs: {label: N}}. Writes
a labgrid environment YAML (QEMUDriver + ShellDriver) to a temporary directory,
boots once and prints one JSON object: boot_s (QEMUDriver activated and powered
on, to the ShellDriver's first successful run), rtt_s (each run("true")),
outputs {label: {seconds, exact, lines, chars}} (run("seq 1 N")'s lines joined
with "\\n", compared with what seq prints), version, or error. labgrid quits QEMU
before this exits; bench/peer.py kills this process group (QEMU in it) after.
"""

import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import labgrid
from labgrid import Environment

ENV = """\
targets:
  main:
    drivers:
      QEMUDriver:
        qemu_bin: qemu
        machine: {machine}
        cpu: {cpu}
        memory: {memory}
        extra_args: {extra_args}
        kernel: kernel
        boot_args: {boot_args}
      ShellDriver:
        prompt: {prompt}
        login_prompt: 'never-a-login-prompt: '
        username: root
        login_timeout: 120
tools:
  qemu: {qemu}
images:
  kernel: {kernel}
"""


def session(cfg: dict, tmp: Path) -> dict:
    yaml = tmp / "env.yaml"
    yaml.write_text(ENV.format(**{k: json.dumps(v) for k, v in cfg.items()}))
    target = Environment(str(yaml)).get_target("main")
    out: dict = {"version": labgrid.__version__}
    try:
        started = time.monotonic()
        qemu = target.get_driver("QEMUDriver")
        qemu.on()
        shell = target.get_driver("ShellDriver")
        shell.run("true")
        out["boot_s"] = time.monotonic() - started
        rtts = []
        for _ in range(cfg["rtts"]):
            t = time.monotonic()
            _, _, code = shell.run("true")
            rtts.append(time.monotonic() - t)
            assert code == 0, code
        out["rtt_s"] = rtts
        out["outputs"] = {}
        for label, n in cfg["outputs"].items():
            t = time.monotonic()
            lines, _, code = shell.run(f"seq 1 {n}", timeout=600)
            seconds = time.monotonic() - t
            got = "\n".join(lines)
            want = "\n".join(map(str, range(1, n + 1)))
            out["outputs"][label] = {"seconds": seconds, "exact": code == 0 and got == want,
                                     "lines": len(lines), "chars": len(got)}
    finally:
        target.cleanup()
    return out


def main() -> None:
    cfg = json.loads(sys.stdin.read())
    with tempfile.TemporaryDirectory(prefix="lab-peer-") as tmp:
        try:
            out = session(cfg, Path(tmp))
        except Exception:
            out = {"version": labgrid.__version__, "error": traceback.format_exc()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
