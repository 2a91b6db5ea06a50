"""Strict loading of YAML lab scenarios into frozen dataclasses.

The only module that imports yaml. Everything is checked before anything
boots: duplicate keys, unknown keys, wrong types, unknown arches and kernel
variants, bad regexes. Every error names the file, the line and the key.
The format is documented key by key in docs/scenarios.md.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import yaml

from lab import kconfig
from lab.arches import ARCHES
from lab.errors import UserError
from lab.model import CELL_KEYS, Cell, Claim, KernelVariant, Scenario, Selector
from lab.schema import Ctx, Fields, Node, join, kind_of, selector
from lab.steps import parse_steps

#: Placeholders allowed in command-line sets, from the arch profile.
PLACEHOLDERS = ("kpti_on", "kpti_off")


def _to_nodes(node: yaml.Node, loader: yaml.SafeLoader, ctx: Ctx, key: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Node] = {}
        for knode, vnode in node.value:
            k = loader.construct_object(knode)
            if not isinstance(k, str):
                hint = (" (YAML reads on/off/yes/no as booleans: quote the key)"
                        if isinstance(k, bool) else "")
                ctx.fail(knode.start_mark.line + 1, key or "(top)",
                         f"key {k!r} is not a string{hint}")
            if k in out:
                ctx.fail(knode.start_mark.line + 1, join(key, k),
                         f"duplicate key (first at line {out[k].line})")
            out[k] = _to_nodes(vnode, loader, ctx, join(key, k))
        return Node(out, line)
    if isinstance(node, yaml.SequenceNode):
        return Node([_to_nodes(n, loader, ctx, f"{key}[{i}]") for i, n in enumerate(node.value)],
                    line)
    return Node(loader.construct_object(node), line)


def _parse(text: str, ctx: Ctx) -> Node:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            ctx.fail(1, "(top)", "the file is empty")
        return _to_nodes(root, loader, ctx, "")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        ctx.fail(line, "(yaml)", f"{exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        ctx.fail(1, "(yaml)", str(exc))
    finally:
        loader.dispose()


# ---------------------------------------------------------------- matrix

def _variant(ctx: Ctx, arch: str, spec: str) -> KernelVariant:
    """A kernel as the scenario names it, resolved for arch (fragment paths are
    relative to the scenario)."""
    if spec.endswith(".config") or "/" in spec:
        spec = str((ctx.path.parent / spec).resolve())
    return kconfig.resolve_variant(ARCHES[arch], spec)


def _cmdlines(m: Fields) -> dict[str, tuple[str, ...]]:
    if not m.has("cmdline"):
        return {"default": ()}
    sets = m.sub("cmdline")
    out = {}
    for name in list(sets.left):
        value = sets.take(name, (str, type(None)))
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            sets.fail(name, "a set name is letters, digits, _ . -")
        for ph in re.findall(r"\{([^}]*)\}", value or ""):
            if ph not in PLACEHOLDERS:
                sets.fail(name, f"unknown placeholder {{{ph}}}; known: {', '.join(PLACEHOLDERS)}")
        out[name] = tuple((value or "").split())
    if not out:
        sets.fail(None, "must name at least one set")
    return out


def _excludes(m: Fields, valid: dict[str, list[str]]) -> list[Selector]:
    node = m.node_of("exclude", required=False)
    if node is None:
        return []
    if not isinstance(node.value, list):
        m.ctx.fail(node.line, m.path("exclude"), f"expected a list, got {kind_of(node.value)}")
    return [selector(item, m.ctx, f"{m.path('exclude')}[{i}]", valid)
            for i, item in enumerate(node.value)]


def _matrix(m: Fields) -> tuple[Cell, ...]:
    """arch x kernel x cmdline, less the excluded cells; every kernel resolved per arch."""
    arches = m.strings("arch")
    for name, line in arches:
        if name not in ARCHES:
            m.ctx.fail(line, m.path("arch"), f"unknown arch {name!r}; valid arches: "
                                             f"{', '.join(ARCHES)}")
    kernels = m.strings("kernel")
    variants: dict[tuple[str, str], KernelVariant] = {}
    for kernel, line in kernels:
        for arch, _ in arches:
            try:
                variants[arch, kernel] = _variant(m.ctx, arch, kernel)
            except UserError as exc:
                m.ctx.fail(line, m.path("kernel"), str(exc))
    cmdlines = _cmdlines(m)
    valid = {"arch": [a for a, _ in arches], "kernel": [k for k, _ in kernels],
             "cmdline": list(cmdlines)}
    excludes = _excludes(m, valid)
    m.done()
    cells = []
    for (arch, _), (kernel, _), (cname, words) in itertools.product(arches, kernels,
                                                                    cmdlines.items()):
        profile = ARCHES[arch]
        expanded = tuple(w.format(kpti_on=profile.kpti_on, kpti_off=profile.kpti_off)
                         for w in words)
        cell = Cell(arch, kernel, cname, expanded, variants[arch, kernel])
        if not any(ex.matches(cell) for ex in excludes):
            cells.append(cell)
    if not cells:
        m.fail(None, "the matrix has no cells (everything is excluded)")
    return tuple(cells)


# ---------------------------------------------------------------- scenario

def _claim(top: Fields) -> tuple[Claim | None, list[tuple[str, int]]]:
    """The claim, and the metrics it shows with their lines (checked once steps are read)."""
    if not top.has("claim"):
        return None, []
    c = top.sub("claim")
    metrics = c.strings("metrics") if c.has("metrics") else []
    claim = Claim(title=c.take("title", str, required=True), quote=c.take("quote", str, ""),
                  how=c.take("how", str, ""), cannot=c.take("cannot", str, ""),
                  metrics=tuple(m for m, _ in metrics))
    c.done()
    return claim, metrics


def _check_uart(scenario: Scenario, ctx: Ctx) -> None:
    """UART steps need an arch whose board UART is free as the device under test."""
    for i, step in enumerate(scenario.steps):
        if step.kind != "uart":
            continue
        for cell in scenario.cells:
            if step.applies(cell) and not ARCHES[cell.arch].dut_uart:
                ctx.fail(step.line, f"steps[{i}].uart", f"{cell.arch} has no device-under-test "
                                                        "UART; add when: {arch: aarch64}")


def load(path: str | Path) -> Scenario:
    path = Path(path)
    ctx = Ctx(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read scenario: {exc.strerror}") from None
    top = Fields(_parse(text, ctx), ctx, "")
    name = top.take("name", str, required=True)
    description = top.take("description", str, "")
    claim, claim_metrics = _claim(top)
    cells = _matrix(top.sub("matrix"))
    ctx.valid = {k: sorted({c.key()[k] for c in cells}) for k in CELL_KEYS}
    repeat = top.positive("repeat", 1, integer=True)
    timeouts = {"boot": 60.0, "step": 60.0}
    if top.has("timeouts"):
        t = top.sub("timeouts")
        timeouts = {k: t.positive(k, v) for k, v in timeouts.items()}
        t.done()
    memory = top.take("memory_mb", int, None)
    steps_node = top.node_of("steps")
    assert steps_node is not None
    steps = tuple(parse_steps(steps_node, ctx, "steps"))
    top.done()
    scenario = Scenario(name=name, description=description, path=path, cells=cells,
                        steps=steps, repeat=repeat, boot_timeout=timeouts["boot"],
                        step_timeout=timeouts["step"], memory_mb=memory, claim=claim)
    _check_uart(scenario, ctx)
    _check_claim(scenario, claim_metrics, ctx)
    return scenario


def _check_claim(scenario: Scenario, metrics: list[tuple[str, int]], ctx: Ctx) -> None:
    """The metrics a claim shows are metrics the steps define."""
    defined = scenario.metrics()
    for i, (name, line) in enumerate(metrics):
        if name not in defined:
            ctx.fail(line, f"claim.metrics[{i}]", f"metric {name!r} is not defined by any step "
                                                   f"(defined: {', '.join(defined) or 'none'})")


def load_all(paths: list[str]) -> list[Scenario]:
    """Scenario files, and every *.yaml in a directory given, in name order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.yaml"))
            if not found:
                raise UserError(f"{p}: no *.yaml scenarios in this directory")
            files += found
        else:
            files.append(p)
    return [load(f) for f in files]
