"""`qmp:` a QMP command to the guest's QEMU, with expected values in its answer.

Only commands that read the machine are allowed, checked when the scenario
loads: many other QMP commands reach the host (`migrate` to an `exec:` URI runs
a host command; `pmemsave`, `dump-guest-memory`, `screendump` write host files;
`chardev-add`, `blockdev-add`, `object-add`, `getfd` open host resources;
`human-monitor-command` runs any HMP command) or end the machine (`quit`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lab.core.errors import MonitorError
from lab.core.model import Step
from lab.scenario.schema import TEXT_LINE, Fields
from lab.scenario.steps.base import Context

#: QMP commands a scenario may send: every query-*, and reading QOM properties.
READ_ONLY = re.compile(r"query-[a-z0-9][a-z0-9-]*|qom-get|qom-list|qom-list-types")
ALLOWED = "query-*, qom-get, qom-list, qom-list-types"


def check_command(f: Fields, k: str, command: str) -> None:
    """Refuses, at load time, a QMP command outside READ_ONLY."""
    if not READ_ONLY.fullmatch(command):
        hint = "; an HMP command line goes in an hmp step" \
            if command == "human-monitor-command" else ""
        f.fail(k, f"QMP command {command!r} is not allowed: a qmp step may only read the "
                  f"machine; allowed: {ALLOWED}{hint}")


@dataclass(frozen=True, kw_only=True)
class Qmp(Step):
    kind = "qmp"
    command: str
    args: tuple[tuple[str, Any], ...] = ()
    expect: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Qmp:
        p = f.sub("qmp")
        command = p.take("command", str, required=True, text=TEXT_LINE)
        check_command(p, "command", command)
        args = p.pairs("args")
        for key, _ in args:
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
                p.fail("args", f"{key!r} is not a QMP argument name a step may pass")
        step = cls(name=common.pop("name") or "qmp", command=command,
                   args=args, expect=p.pairs("expect"), **common)
        p.done()
        return step

    def shown(self) -> tuple[str, str]:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args)
        expect = ", ".join(f"{k} = {v!r}" for k, v in self.expect)
        return (f"(QMP) {self.command}" + (f" {args}" if args else ""),
                f"the answer has {expect}" if expect else "an answer, not an error")

    def execute(self, ctx: Context) -> list[str]:
        try:
            reply = ctx.guest.qmp(self.command, dict(self.args), ctx.timeout)
        except MonitorError as exc:   # QEMU said no: this step fails; no answer is an error
            return [str(exc)]
        got = reply if isinstance(reply, dict) else {}
        return [f"{k}: got {got.get(k) if got else reply!r}, expected {v!r}"
                for k, v in self.expect if got.get(k) != v]
