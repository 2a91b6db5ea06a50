"""Step kinds. Each module holds one YAML key's dataclass(es), parser and executor.

Adding a kind: write lab/scenario/steps/<kind>.py with a frozen dataclass deriving from
lab.core.model.Step (its `parse` and `execute`), and add one line to PARSERS. A module
here that is not a kind is named in HELPERS (tests/unit/test_layers.py holds both).
"""

from __future__ import annotations

from collections.abc import Callable

from lab.core import inputs
from lab.core.model import Step
from lab.scenario.schema import TEXT_LINE, Ctx, Fields, Node, kind_of
from lab.scenario.steps import (
    asserts,
    dialog,
    dmesg,
    hmp,
    kmemleak,
    kselftest,
    kunit,
    module,
    put,
    qmp,
    rounds,
    run,
    uart,
)

#: YAML key -> parser(fields, name=, line=, when=, timeout=, allow_faults=) -> step.
PARSERS: dict[str, Callable[..., Step]] = {
    "run": run.Run.parse,
    "put": put.Put.parse,
    "module": module.Module.parse,
    "uart": uart.parse,
    "qmp": qmp.Qmp.parse,
    "hmp": hmp.Hmp.parse,
    "assert": asserts.parse,
    "dmesg": dmesg.Dmesg.parse,
    "kselftest": kselftest.Kselftest.parse,
    "kunit": kunit.Kunit.parse,
    "kmemleak": kmemleak.Kmemleak.parse,
    "dialog": dialog.Dialog.parse,
}

#: Modules of this package that are not step kinds: what kinds share (base), KTAP
#: rows into results (testrows), and `rounds:` blocks, expanded before parsing.
HELPERS = ("base", "testrows", "rounds")


def parse_step(node: Node, ctx: Ctx, key: str) -> Step:
    f = Fields(node, ctx, key)
    kinds = [k for k in PARSERS if f.has(k)]
    if len(kinds) != 1:
        f.fail(None, f"a step has exactly one of {', '.join(PARSERS)}"
                     + (f" (found {', '.join(kinds)})" if kinds else ""))
    common = dict(name=f.take("name", str, None, text=TEXT_LINE), line=node.line,
                  when=f.selector("when"),
                  timeout=f.positive("timeout", None, most=inputs.MAX_SECONDS),
                  allow_faults=f.take("allow_faults", bool, False))
    step = PARSERS[kinds[0]](f, **common)
    f.done()
    return step


def parse_steps(node: Node, ctx: Ctx, key: str) -> list[Step]:
    """A non-empty list of steps; `rounds:` blocks are expanded in place, at most
    MAX_STEPS steps in all (rounds.expand counts before it expands)."""
    if not isinstance(node.value, list) or not node.value:
        ctx.fail(node.line, key, "expected a non-empty list of steps"
                 + ("" if isinstance(node.value, list) else f", got {kind_of(node.value)}"))
    out: list[Step] = []
    for i, item in enumerate(node.value):
        path = f"{key}[{i}]"
        if isinstance(item.value, dict) and "rounds" in item.value:
            out += rounds.expand(Fields(item, ctx, path),
                                 lambda n, f, k: parse_steps(n, f.ctx, k))
        else:
            out.append(parse_step(item, ctx, path))
        if len(out) > inputs.MAX_STEPS:
            ctx.fail(item.line, path, f"{key} expand to {len(out):,} steps or more, over the "
                                      f"bound of {inputs.MAX_STEPS:,}")
    return out
