"""`put:` a file from beside the scenario into the guest.

The source is resolved (symlinks and `..` included) when the scenario loads,
and must lie under the scenario's directory, or under a directory the user
named with `lab run --allow-put-from DIR`: a scenario must not carry host
files (/etc/shadow) into its results. It must be a regular file (a FIFO would
block, /dev/zero never end) of at most MAX_PUT_BYTES, since it goes through
the guest's console.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import inputs
from lab.model import Step
from lab.schema import TEXT_LINE, Fields
from lab.steps.base import Context

#: The console carries a put as base64 in 2 KiB commands, about 60 KiB/s:
#: 1 MiB takes some 20 s of the default 60 s step deadline.
MAX_PUT_BYTES = 1 * inputs.MIB


def source(p: Fields, text: str) -> Path:
    """The resolved source file; refuses one outside the allowed directories."""
    base = p.ctx.path.parent
    try:
        path = (base / text).resolve(strict=True)
    except FileNotFoundError:
        p.fail("src", f"no such file: {base / text}")
    except (OSError, RuntimeError) as exc:      # a symlink loop, a permission
        p.fail("src", f"cannot resolve {text!r}: {exc}")
    roots = (base.resolve(), *p.ctx.allow)
    if not any(path.is_relative_to(root) for root in roots):
        p.fail("src", f"{text!r} is {path}, outside the scenario's directory {roots[0]}; "
                      "`lab run --allow-put-from DIR` lets put read files under DIR")
    if problem := inputs.file_problem(path, MAX_PUT_BYTES):
        p.fail("src", f"{path}: {problem}")
    return path


@dataclass(frozen=True, kw_only=True)
class Put(Step):
    kind = "put"
    src: Path
    dest: str
    mode: int = 0o644

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Put:
        p = f.sub("put")
        path = source(p, p.take("src", str, required=True, text=TEXT_LINE))
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

    def execute(self, ctx: Context) -> list[str]:
        # Read again as it was checked: the file may have changed since the load.
        data = inputs.read_bytes(self.src, MAX_PUT_BYTES, "put source", follow=False)
        ctx.guest.put_file(data, self.dest, self.mode, ctx.deadline)
        return []
