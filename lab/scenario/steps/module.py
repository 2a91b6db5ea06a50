"""`module:` load (modprobe, or insmod for a .ko path) or unload a kernel module."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from lab.core.model import Step
from lab.scenario.schema import TEXT_LINE, Fields
from lab.scenario.steps import kmemleak
from lab.scenario.steps.base import Context


@dataclass(frozen=True, kw_only=True)
class Module(Step):
    kind = "module"
    load: str = ""
    unload: str = ""
    args: str = ""

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Module:
        p = f.sub("module")
        load, unload = (p.take("load", str, "", text=TEXT_LINE),
                        p.take("unload", str, "", text=TEXT_LINE))
        if bool(load) == bool(unload):
            p.fail(None, "exactly one of load, unload")
        args = p.take("args", str, "", text=TEXT_LINE)
        p.done()
        return cls(name=common.pop("name") or (f"load {load}" if load else f"unload {unload}"),
                   load=load, unload=unload, args=args, **common)

    def shown(self) -> tuple[str, str]:
        return self.command(), "exit 0"

    def command(self) -> str:
        if self.unload:
            return f"rmmod {shlex.quote(self.unload)}"
        verb = "insmod" if self.load.endswith(".ko") else "modprobe"
        # args are module parameters, words the user wrote: passed as they are.
        return f"{verb} {shlex.quote(self.load)} {self.args}".strip()

    def execute(self, ctx: Context) -> list[str]:
        r = ctx.guest.run(self.command(), ctx.timeout)
        ctx.exit_code = r.exit_code
        if r.exit_code != 0:
            return [f"exit code {r.exit_code}: {r.output.strip()}"]
        if self.load and kmemleak.enabled(ctx.kernel) \
                and (record := kmemleak.record_command(kmemleak.module_name(self.load))):
            ctx.guest.run(record, ctx.timeout)
        return []
