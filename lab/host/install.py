"""Acting on the host packages: probe each tool the way the lab runs it, and install
what is missing with apt-get (lab doctor [--install] [--strict])."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path

from lab.core.errors import CommandError, UserError
from lab.host import proc
from lab.host.packages import DEPS, KERNEL_TARBALL, Dep, Progress, debs_dir

#: Each probe's deadline: a tool that works answers in well under a second.
PROBE_DEADLINE_S = 30.0


def probe(dep: Dep, src: Path | None = None) -> str | None:
    """Run dep's probe (see Probe): None when it passed or there is none, else one
    line saying what failed and which package to install. src is the extracted
    kernel source, for probes of the kernel's own scripts."""
    if dep.probe is None or not dep.found():
        return None
    if dep.probe.kernel_source and src is None:
        return f"not probed: the kernel source ({KERNEL_TARBALL}) is missing"
    with tempfile.TemporaryDirectory(prefix="lab-probe-") as tmp:
        for name, text in dep.probe.files:
            (Path(tmp) / name).write_text(text)
        argv = [word.format(dir=tmp, src=src) for word in dep.probe.argv]
        try:
            done = proc.run(argv, deadline=PROBE_DEADLINE_S, check=False, cwd=Path(tmp),
                            what=argv[0])
        except (CommandError, OSError) as exc:
            return f"{shlex.join(argv)}: {str(exc).splitlines()[0]}"
    if done.returncode == 0 and dep.probe.expect in done.output:
        return None
    last = next((line.strip() for line in reversed(done.output.splitlines()) if line.strip()),
                "no output")
    said = f"exited with {done.returncode}" if done.returncode else \
        f"did not print {dep.probe.expect!r}"
    return (f"{shlex.join(argv)} {said}: {last[:300]} (install the Debian package "
            f"{dep.package}: apt-get install {dep.package})")


def status(strict: bool = False, src: Path | None = None) -> list[tuple[Dep, str]]:
    """Each dependency and what is wrong with it: "" when it is there (and, strict,
    its probe passed), "missing", or the failed probe's line."""
    return [(d, "missing" if not d.found() else (probe(d, src) or "") if strict else "")
            for d in DEPS]


#: apt-get downloads and installs: generous, but bounded.
APT_DEADLINE_S = 1800.0
DPKG_DEADLINE_S = 120.0


def _apt(verb: str, *args: str, options: tuple[str, ...] = (),
         progress: Progress | None = None, cwd: Path | None = None) -> None:
    proc.run(["apt-get", *options, verb, *args], deadline=APT_DEADLINE_S, cwd=cwd,
             env={"DEBIAN_FRONTEND": "noninteractive"}, what=f"apt-get {verb}",
             progress=(lambda line: progress("apt-get " + verb, line)) if progress else None,
             keep_output=False)


def install(deps: list[Dep], progress: Progress | None = None) -> None:
    """Install missing packages with apt, and download the guests' static packages."""
    if not deps:
        return
    if os.geteuid() != 0:
        raise UserError("lab doctor --install must run as root (it calls apt-get)")
    if shutil.which("apt-get") is None:
        raise UserError("apt-get not found: lab doctor --install needs Debian")
    foreign = [d for d in deps if d.foreign]
    native = sorted({d.package for d in deps if not d.foreign})
    if foreign:
        native_arch = proc.run(["dpkg", "--print-architecture"],
                               deadline=DPKG_DEADLINE_S).output.strip()
        for arch in sorted({d.foreign for d in foreign} - {native_arch}):
            proc.run(["dpkg", "--add-architecture", arch], deadline=DPKG_DEADLINE_S)
    _apt("update", "-q", progress=progress)
    if native:
        _apt("install", "-y", "-q", "--no-install-recommends", *native, progress=progress)
    if foreign:
        debs_dir().mkdir(parents=True, exist_ok=True)
        # root downloads into the lab's cache, which apt's _apt user cannot write
        _apt("download", *(d.package for d in foreign), progress=progress, cwd=debs_dir(),
             options=("-o", "APT::Sandbox::User=root"))
