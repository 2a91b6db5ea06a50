"""`put:` a file from beside the scenario into the guest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.model import Step
from lab.schema import Fields
from lab.steps.base import Context


@dataclass(frozen=True, kw_only=True)
class Put(Step):
    kind = "put"
    src: Path
    dest: str
    mode: int = 0o644

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Put:
        p = f.sub("put")
        src = p.take("src", str, required=True)
        path = f.ctx.path.parent / src
        if not path.is_file():
            p.fail("src", f"no such file: {path}")
        mode = p.take("mode", (int, str), 0o644)
        if isinstance(mode, str):
            try:
                mode = int(mode, 8)
            except ValueError:
                p.fail("mode", f"not an octal mode: {mode!r}")
        dest = p.take("dest", str, required=True)
        p.done()
        return cls(name=common.pop("name") or f"put: {dest}", src=path, dest=dest, mode=mode,
                   **common)

    def execute(self, ctx: Context) -> list[str]:
        ctx.guest.put_file(self.src.read_bytes(), self.dest, self.mode)
        return []
