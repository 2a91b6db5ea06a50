"""lab plan: what `lab run` would do with these scenarios, checked and shown, with
nothing built or booted: each cell with its command line and the steps it runs,
the boots, and the kernels it needs (a kernel not yet cached is a build of minutes).
Bad input fails here exactly as it would fail `lab run`: one line, exit 2."""

from __future__ import annotations

from typing import Any

from lab.app import report
from lab.app.commands.options import allow_put_from
from lab.core.model import Scenario
from lab.scenario import scenario


def plan(scenarios: list[Scenario]) -> dict[str, Any]:
    """The plan as data: per scenario its cells (id, command line, steps, boots),
    and the kernels of the whole run."""
    out: list[dict[str, Any]] = []
    for s in scenarios:
        cells = [{"id": c.id, "arch": c.arch, "kernel": c.kernel, "cmdline": c.cmdline,
                  "cmdline_words": list(c.cmdline_words), "boots": s.repeat,
                  "steps": [f"{st.kind} {st.name}" for st in s.steps if st.applies(c)]}
                 for c in s.cells]
        out.append({"name": s.name, "path": str(s.path), "repeat": s.repeat, "cells": cells})
    kernels = sorted({f"{c.arch}/{c.kernel}" for s in scenarios for c in s.cells})
    boots = sum(len(s.cells) * s.repeat for s in scenarios)
    return {"scenarios": out, "boots": boots, "kernels": kernels}


def cmd_plan(args) -> int:
    data = plan(scenario.load_all(args.scenarios, tuple(args.allow_put_from)))
    if args.json:
        report.print_json(data)
        return 0
    for s in data["scenarios"]:
        report.out.print(f"{s['path']}: {s['name']}, {len(s['cells'])} cell(s) x "
                         f"{s['repeat']} boot(s)")
        width = max(len(c["id"]) for c in s["cells"])
        for c in s["cells"]:
            words = " ".join(c["cmdline_words"]) or "-"
            report.out.print(f"  {c['id']:{width}}  cmdline: {words}; "
                             f"{len(c['steps'])} step(s): {', '.join(c['steps'])}")
    report.out.print(f"{data['boots']} boot(s) on {len(data['kernels'])} kernel(s): "
                     f"{', '.join(data['kernels'])}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("plan", help="check scenarios and show what lab run would do "
                                    "(cells, steps, boots, kernels); nothing is built or booted")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument("--json", action="store_true", help="print JSON")
    allow_put_from(p)
    p.set_defaults(func=cmd_plan)
