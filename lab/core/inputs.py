"""What users hand the lab, checked once at the door: files, names, numbers.

Every file a user names (a scenario, a fragment, a put source, a results.json)
is read through read_bytes(): a regular file (a FIFO would block and a device
never end), no larger than a bound checked before it is read; text is UTF-8,
its first bad byte named by line. Every string that becomes a path component
(a scenario, kernel or command-line set name) passes name_problem() first.
Every numeric bound of the lab is here, so that the loader, the CLI and the
docs (docs/scenarios.md, "Bounds") say the same thing.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from lab.core.errors import UserError

KIB, MIB = 1024, 1024 * 1024

#: A scenario file; read only after its size is checked.
MAX_SCENARIO_BYTES = 1 * MIB
#: YAML nesting, and YAML nodes in a file (the largest shipped scenario has 235).
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 10_000
#: A Kconfig fragment.
MAX_FRAGMENT_BYTES = 1 * MIB
#: A results.json that `lab compare` reads.
MAX_RESULTS_BYTES = 256 * MIB
#: The longest string a results.json may hold (a key or a value): the lab's own
#: messages quote at most a few KiB of an output, and a kernel report is some 10 KiB.
MAX_RESULT_STRING = 1 * MIB
#: Every deadline, in seconds: 24 h.
MAX_SECONDS = 24 * 3600
#: Guest memory, MiB: what a lab kernel boots with, up to what a host can lend.
MEMORY_MB = (64, 16384)
#: A comparison's margin (`compare: margin`, `lab bisect --margin`), as a fraction:
#: "equivalent" means within ±margin, and a margin of 100% or more says nothing.
MAX_MARGIN = 0.99
#: Boots per cell (`repeat`, `lab run --repeat`).
MAX_REPEAT = 1000
#: Steps a cell runs in all: expanded rounds x boots.
MAX_STEPS = 10_000
#: Parallel cells (`lab run -j`) and make jobs (`lab build -j`).
MAX_JOBS = 64
#: lab run --seed: the schedule's seeds are 31-bit (what results.json records).
MAX_SEED = 2**31 - 1
#: Kernels one matrix, or one run, may ask for (arch x variant): each is a build of
#: some 7 min on two cores and a build tree of 100-200 MB when it is not cached.
MAX_KERNELS = 16
#: A name that becomes a path component.
MAX_NAME = 64
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# ---------------------------------------------------------------- names

def name_problem(name: str) -> str | None:
    """Why name cannot be a path component (None: it can)."""
    if not NAME.fullmatch(name):
        return (f"{name!r} is not a name: letters, digits, '_', '.' and '-', "
                "starting with a letter or a digit")
    if ".." in name:
        return f"{name!r} is not a name: '..' is not allowed in it"
    if len(name) > MAX_NAME:
        return f"a name has at most {MAX_NAME} characters, {name[:20]!r}... has {len(name)}"
    return None


# ---------------------------------------------------------------- numbers

def show(value: float) -> str:
    """A number for a message: a huge integer shortened, a float as %g."""
    if isinstance(value, int) and not isinstance(value, bool):
        digits = str(abs(value))
        if len(digits) > 15:
            return f"{'-' if value < 0 else ''}{digits[:6]}... ({len(digits)} digits)"
        return str(value)
    return f"{value:g}"


def range_problem(value: float, lo: float, hi: float, *, above: bool = False) -> str | None:
    """Why value is not a finite number in [lo, hi] ((lo, hi] when above)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if above and value <= lo:
        return f"must be positive, got {show(value)}" if lo == 0 else \
            f"must be above {show(lo)}, got {show(value)}"
    if value < lo:
        return f"must be at least {show(lo)}, got {show(value)}"
    if value > hi:
        return f"must be at most {show(hi)}, got {show(value)}"
    return None


def steps_problem(steps: int, boots: int) -> str | None:
    """Why a cell of steps x boots is too long (None: it is not)."""
    if steps * boots > MAX_STEPS:
        return (f"{boots} boot(s) of {steps} step(s) make {steps * boots:,} steps per cell, "
                f"over the bound of {MAX_STEPS:,}")
    return None


def kernels_problem(kernels: int) -> str | None:
    """Why asking for this many kernels is too much (None: it is not)."""
    if kernels > MAX_KERNELS:
        return (f"asks for {kernels} kernels (arch x kernel), over the bound of "
                f"{MAX_KERNELS}: each one not cached is a build of minutes; split it")
    return None


# ---------------------------------------------------------------- files

def _kind(mode: int) -> str:
    return ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")


def file_problem(path: Path, limit: int) -> str | None:
    """Why path is not a regular file of at most limit bytes (None: it is)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISREG(st.st_mode):
        return f"{_kind(st.st_mode)}, not a regular file"
    if st.st_size > limit:
        return f"{st.st_size:,} bytes, over the bound of {limit:,}"
    return None


def read_bytes(path: Path, limit: int, what: str, *, follow: bool = True) -> bytes:
    """A regular file's bytes, at most limit of them; UserError naming path otherwise.

    The size and kind are checked before the file is opened (opening a device
    can act), and again on the open file (it may have changed meanwhile).
    """
    if problem := file_problem(path, limit):
        raise UserError(f"{path}: cannot read {what}: {problem}")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{path}: cannot read {what}: not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"{path}: cannot read {what}: over the bound of {limit:,} bytes")
    return data


def decode_text(data: bytes, path: Path) -> str:
    """UTF-8 text without NUL bytes; else UserError naming the file and line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = (" (UTF-16 text: save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff")
                else "")
        raise UserError(f"{path}:{line}: (file): not UTF-8 text: byte "
                        f"{data[exc.start]:#04x} at offset {exc.start}{hint}") from None
    if (nul := text.find("\0")) >= 0:
        line = text.count("\n", 0, nul) + 1
        raise UserError(f"{path}:{line}: (file): a NUL byte at offset {nul}: a binary file, "
                        "not text")
    return text


def read_text(path: Path, limit: int, what: str) -> str:
    return decode_text(read_bytes(path, limit, what), path)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number (the lab writes strict JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def strict_json(text: str) -> Any:
    """JSON as the lab writes it: NaN, Infinity and numbers too large for a float
    (1e999) are ValueErrors, not values that break every sum they reach.
    RecursionError (nesting deeper than Python's stack) passes to the caller."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


def long_string(data: Any, limit: int) -> str | None:
    """Where data (parsed JSON) holds a string, or a key, longer than limit, and how
    long it is (None: nowhere). Iterative: nesting costs no stack."""
    todo: list[tuple[str, Any]] = [("", data)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, str) and len(value) > limit:
            return (f"{where or 'the file'}: a string of {len(value):,} characters, over the "
                    f"bound of {limit:,}")
        if isinstance(value, dict):
            for k, v in value.items():
                if len(k) > limit:
                    return f"{where or 'the file'}: a key of {len(k):,} characters"
                todo.append((f"{where}.{k}" if where else k, v))
        elif isinstance(value, list):
            todo += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    return None


def tail(path: Path, limit: int, within: Path) -> tuple[bytes, int] | None:
    """The last limit bytes of a regular file under within, and the file's size;
    None when it is missing, not a regular file, or outside within (a log name in
    a results.json is any string a user wrote: "../../etc/shadow" is not a log)."""
    try:
        real = path.resolve()
        real.relative_to(within.resolve())
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError, RuntimeError):
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        f.seek(max(0, st.st_size - limit))
        return f.read(limit), st.st_size


# ---------------------------------------------------------------- directories

def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def dir_problem(path: Path) -> str | None:
    """Why the lab cannot create or write into directory path (None: it can).

    Tried for real, as root too: a probe directory is made and removed in path,
    or in its nearest existing ancestor when path does not exist yet.
    """
    try:
        where = _nearest_existing(path.absolute())
        if not where.is_dir():
            return ("exists and is not a directory" if where == path.absolute()
                    else f"{where} is not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".lab-probe-", dir=where))
    except OSError as exc:
        return f"cannot create a directory in {where}: {exc.strerror or exc}"
    return None


#: A sysctl's name (dots between /proc/sys path components), and its longest value.
SYSCTL = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
MAX_SYSCTL_VALUE = 256


def sysctl_problem(name: str, value: str) -> str | None:
    """Why name=value is no sysctl setting (None: it is one)."""
    if not SYSCTL.fullmatch(name):
        return f"{name!r} is not a sysctl name (such as vm.overcommit_memory)"
    if len(value) > MAX_SYSCTL_VALUE or any(ord(c) < 32 and c != "\t" for c in value):
        return f"the value of {name} must be one line of at most {MAX_SYSCTL_VALUE} characters"
    return None


def guest_path(dest: str) -> str:
    """A path in the guest, normalized: absolute, under /, without `..`, NUL or line
    breaks. ValueError saying why not."""
    if not dest.startswith("/") or any(c in dest for c in "\0\n\r"):
        raise ValueError(f"{dest!r} is not an absolute guest path")
    parts = PurePosixPath(dest).parts
    if ".." in parts:
        raise ValueError(f"{dest!r} has a `..` in it")
    if len(parts) < 2:
        raise ValueError(f"{dest!r} is the guest's root; name a path under it")
    return str(PurePosixPath(*parts))

