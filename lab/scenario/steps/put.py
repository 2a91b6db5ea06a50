"""`put:` a file from beside the scenario into the guest.

The source is resolved (symlinks and `..` included) when the scenario loads,
and must lie under the scenario's directory, or under a directory the user
named with `lab run --allow-put-from DIR`: a scenario must not carry host
files (/etc/shadow) into its results. `{arch}` in it stands for the cell's
arch. It must be a regular file (a FIFO would block, /dev/zero never end) of
at most MAX_PUT_BYTES, since it goes through the guest's console; larger files
go into the guest's initramfs (the scenario's files:).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core import inputs
from lab.core.model import Step
from lab.scenario.schema import TEXT_LINE, Fields
from lab.scenario.steps.base import Context

#: The console carries a put as base64 in 2 KiB commands, about 60 KiB/s:
#: 1 MiB takes some 20 s of the default 60 s step deadline.
MAX_PUT_BYTES = 1 * inputs.MIB


def sources(p: Fields, text: str) -> tuple[tuple[str, Path], ...]:
    """The resolved source file by arch ("": every arch); each must be allowed
    (Fields.host_paths), and a regular file of at most MAX_PUT_BYTES."""
    found = p.host_paths("src", text)
    for path in found.values():
        if problem := inputs.file_problem(path, MAX_PUT_BYTES):
            p.fail("src", f"{path}: {problem}")
    return tuple(found.items())


@dataclass(frozen=True, kw_only=True)
class Put(Step):
    kind = "put"
    #: The source by arch ("": the same file for every arch).
    src: tuple[tuple[str, Path], ...]
    dest: str
    mode: int = 0o644

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Put:
        p = f.sub("put")
        path = sources(p, p.take("src", str, required=True, text=TEXT_LINE))
        mode = p.take("mode", (int, str), 0o644)
        if isinstance(mode, str):
            try:
                mode = int(mode, 8)
            except ValueError:
                p.fail("mode", f"not an octal mode: {mode!r}")
        if not 0 <= mode <= 0o7777:
            p.fail("mode", f"a mode is 0 to 0o7777, got {inputs.show(mode)}")
        dest = p.take("dest", str, required=True, text=TEXT_LINE)
        p.done()
        return cls(name=common.pop("name") or f"put: {dest}", src=path, dest=dest, mode=mode,
                   **common)

    def shown(self) -> tuple[str, str]:
        sources = ", ".join(f"{src}" + (f" ({arch})" if arch else "") for arch, src in self.src)
        return f"put {sources} at {self.dest} (mode {self.mode:o})", "the file arrives whole"

    def execute(self, ctx: Context) -> list[str]:
        src = dict(self.src)
        path = src.get(ctx.arch) or src[""]
        # Read again as it was checked: the file may have changed since the load.
        data = inputs.read_bytes(path, MAX_PUT_BYTES, "put source", follow=False)
        ctx.guest.put_file(data, self.dest, self.mode, ctx.deadline)
        return []
