"""`qmp:` a QMP command to the guest's QEMU, with expected values in its answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.model import Step
from lab.schema import Fields
from lab.steps.base import Context


@dataclass(frozen=True, kw_only=True)
class Qmp(Step):
    kind = "qmp"
    command: str
    args: tuple[tuple[str, Any], ...] = ()
    expect: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Qmp:
        p = f.sub("qmp")
        step = cls(name=common.pop("name") or "qmp", command=p.take("command", str, required=True),
                   args=p.pairs("args"), expect=p.pairs("expect"), **common)
        p.done()
        return step

    def execute(self, ctx: Context) -> list[str]:
        reply = ctx.guest.qmp(self.command, **dict(self.args))
        got = reply if isinstance(reply, dict) else {}
        return [f"{k}: got {got.get(k) if got else reply!r}, expected {v!r}"
                for k, v in self.expect if got.get(k) != v]
