"""Everything the user sees: tables, progress, JSON. The only rich import."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Iterator

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    err.print(Text(f"lab: error: {message}", style="bold red"), soft_wrap=True)


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def build_progress(label: str) -> Iterator:
    """A one-line live display of a build's current phase; yields the callback."""
    started = time.monotonic()
    state = {"phase": "start", "detail": ""}

    def render() -> Text:
        return Text.assemble((f"{label} ", "bold"), (f"[{state['phase']}] ", "cyan"),
                             (f"{time.monotonic() - started:5.0f}s ", "dim"),
                             state["detail"][:80])

    def progress(phase: str, detail: str) -> None:
        state.update(phase=phase, detail=detail)
        live.update(render())

    with Live(render(), console=err, refresh_per_second=4, transient=True) as live:
        yield progress
    if state["phase"] != "start":   # say so only when something was built
        err.print(Text.assemble((f"{label} ", "bold"), ("built ", "green"),
                                f"({time.monotonic() - started:.1f}s)"))


def kernels_table(builds) -> None:
    table = Table(title="built kernels")
    for col in ("arch", "kernel", "hash", "release", "image", "initramfs"):
        table.add_column(col)
    for b in builds:
        table.add_row(b.arch, b.kernel, b.hash[:12], b.release, str(b.image),
                      str(b.initramfs or "-"))
    out.print(table)


def doctor_table(rows: list[tuple[str, str, bool]], accel: dict) -> None:
    table = Table(title="lab doctor: host dependencies")
    table.add_column("needed")
    table.add_column("Debian package")
    table.add_column("status")
    for what, package, ok in rows:
        table.add_row(what, package, Text("ok", "green") if ok else Text("MISSING", "bold red"))
    out.print(table)
    out.print(f"accelerator: [bold]{accel['accel']}[/bold] — {accel['reason']}")
