"""console.log's line format: the one writer's stamp and the one reader.

Every line the lab got from a guest's consoles is written as
`<seconds since start, %9.3f> <source, %-6s> | <text>`, for example
`    1.234 kernel | Linux version 6.1...` or `    2.000 shell  | hello`. The
source is a console's name: `kernel` (the kernel console), `shell` (the shell's).
lab.guest.console.ConsoleLog writes with stamp(); everything that reads console.log
(KTAP rows, faults per test, the report's last kernel lines, the KTAP parser's
prefix) reads with the functions here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The kernel console's source name.
KERNEL = "kernel"
#: A stamp, bounded so a hostile line cannot make the match backtrack far.
PATTERN = r" {0,12}\d{1,12}\.\d{3} [a-z]{1,12} {0,12}\| "
_LINE = re.compile(r"^ {0,12}(\d{1,12}\.\d{3}) ([a-z]{1,12}) {0,12}\| ")


def stamp(seconds: float, source: str) -> str:
    """The head of a console.log line from source, seconds after the log started."""
    return f"{seconds:9.3f} {source:6} | "


def parse(line: str) -> tuple[float, str, str] | None:
    """(seconds, source, text) of a console.log line; None for any other line."""
    m = _LINE.match(line)
    return (float(m.group(1)), m.group(2), line[m.end():]) if m else None


def is_kernel(line: str) -> bool:
    """A line console.log got from the kernel console."""
    parsed = parse(line)
    return parsed is not None and parsed[1] == KERNEL


def kernel_text(lines: Iterable[str]) -> list[str]:
    """The kernel console's lines, without their stamps."""
    return [p[2] for line in lines if (p := parse(line)) and p[1] == KERNEL]
