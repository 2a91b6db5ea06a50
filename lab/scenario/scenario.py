"""Strict loading of YAML lab scenarios into frozen dataclasses.

The only module that imports yaml. Everything is checked before anything
boots: duplicate keys, unknown keys, wrong types, unknown arches and kernel
variants, bad regexes, names, bounds. Every error names the file, the line and
the key. The loader is bounded: the file's size is checked before it is read,
and YAML anchors, deep nesting and too many nodes are refused while the file
is composed, so that no input makes it work for long. The format is documented
key by key in docs/scenarios.md.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import yaml

from lab.arches import ARCHES
from lab.artifacts import kconfig
from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import (
    CELL_KEYS,
    Cell,
    Claim,
    CompareSpec,
    GuestFile,
    KernelVariant,
    Scenario,
    Selector,
)
from lab.scenario.schema import TEXT_LINE, Ctx, Fields, Node, join, kind_of, selector
from lab.scenario.steps import parse_steps

#: Placeholders allowed in command-line sets, from the arch profile.
PLACEHOLDERS = ("kpti_on", "kpti_off")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing while it composes what would make it work
    without bound: an anchor or alias (a "billion laughs" expands 9 lines into
    10^9 nodes), nesting deeper than MAX_YAML_DEPTH, more than MAX_YAML_NODES nodes."""

    def __init__(self, text: str, ctx: Ctx):
        super().__init__(text)
        self.ctx = ctx
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            self.ctx.fail(line, "(yaml)", "anchors and aliases (& and *) are not allowed")
        self.nodes += 1
        if self.nodes > inputs.MAX_YAML_NODES:
            self.ctx.fail(line, "(yaml)", f"more than {inputs.MAX_YAML_NODES:,} YAML nodes")
        if self.depth >= inputs.MAX_YAML_DEPTH:
            self.ctx.fail(line, "(yaml)", f"nested deeper than {inputs.MAX_YAML_DEPTH} levels")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _scalar(node: yaml.Node, loader: yaml.SafeLoader, ctx: Ctx, key: str) -> object:
    try:
        return loader.construct_object(node)
    except (ValueError, OverflowError) as exc:   # e.g. an integer of 5,000 digits
        reason = str(exc).split(";")[0]          # not Python's advice on its own limit
        ctx.fail(node.start_mark.line + 1, key or "(top)", f"cannot read this value: {reason}")


def _to_nodes(node: yaml.Node, loader: yaml.SafeLoader, ctx: Ctx, key: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Node] = {}
        for knode, vnode in node.value:
            k = _scalar(knode, loader, ctx, key)
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
    return Node(_scalar(node, loader, ctx, key), line)


def _parse(text: str, ctx: Ctx) -> Node:
    loader: _Loader | None = None
    try:
        loader = _Loader(text, ctx)     # reads the whole text: may raise ReaderError
        root = loader.get_single_node()
        if root is None:
            ctx.fail(1, "(top)", "the file is empty")
        return _to_nodes(root, loader, ctx, "")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        ctx.fail(line, "(yaml)", f"{exc.problem or exc.context}")
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        ctx.fail(line, "(yaml)", f"character {exc.character:#x} is not allowed in YAML "
                                 f"({exc.reason})")
    except yaml.YAMLError as exc:
        ctx.fail(1, "(yaml)", str(exc))
    finally:
        if loader is not None:
            loader.dispose()


# ---------------------------------------------------------------- matrix

def _variant(ctx: Ctx, arch: str, spec: str) -> KernelVariant:
    """A kernel as the scenario names it, resolved for arch (fragment paths are
    relative to the scenario)."""
    if spec.endswith(".config") or "/" in spec:
        spec = str((ctx.path.parent / spec).resolve())
    return kconfig.resolve_variant(ARCHES[arch], spec)


_PLACEHOLDER = re.compile(r"\{([^}]*)\}")


def _cmdlines(m: Fields) -> dict[str, tuple[str, ...]]:
    if not m.has("cmdline"):
        return {"default": ()}
    sets = m.sub("cmdline")
    out = {}
    for name in list(sets.left):
        if problem := inputs.name_problem(name):
            sets.fail(name, f"a set name becomes part of a cell id: {problem}")
        value = sets.take(name, (str, type(None)))
        for ph in _PLACEHOLDER.findall(value or ""):
            if ph not in PLACEHOLDERS:
                sets.fail(name, f"unknown placeholder {{{ph}}}; known: {', '.join(PLACEHOLDERS)}")
        out[name] = tuple((value or "").split())
    if not out:
        sets.fail(None, "must name at least one set")
    return out


def _expand(words: tuple[str, ...], arch: str) -> tuple[str, ...]:
    """A set's words with {kpti_on} and {kpti_off} replaced by the arch's own."""
    profile = ARCHES[arch]
    values = {"kpti_on": profile.kpti_on, "kpti_off": profile.kpti_off}
    return tuple(_PLACEHOLDER.sub(lambda m: values[m.group(1)], w) for w in words)


def _excludes(m: Fields, valid: dict[str, list[str]]) -> list[Selector]:
    node = m.node_of("exclude", required=False)
    if node is None:
        return []
    if not isinstance(node.value, list):
        m.ctx.fail(node.line, m.path("exclude"), f"expected a list, got {kind_of(node.value)}")
    return [selector(item, m.ctx, f"{m.path('exclude')}[{i}]", valid)
            for i, item in enumerate(node.value)]


def _unique(m: Fields, key: str, items: list[tuple[str, int]], names: dict[str, str]) -> None:
    """Each name once: cell ids (and so result directories) must not collide."""
    seen: dict[str, str] = {}
    for value, line in items:
        name = names.get(value, value)
        if name in seen:
            m.ctx.fail(line, m.path(key), f"{value!r} is listed twice" if seen[name] == value
                       else f"{value!r} is named {name!r}, like the earlier {key} "
                            f"{seen[name]!r}: cell ids would collide")
        seen[name] = value


def _kernels(m: Fields, arches: list[tuple[str, int]]
             ) -> tuple[list[tuple[str, int]], dict[tuple[str, str], KernelVariant]]:
    """The kernels by name (a fragment path is named by its file's stem), each
    resolved for every arch: its fragments are read and checked here."""
    kernels = m.strings("kernel")
    variants: dict[tuple[str, str], KernelVariant] = {}
    names: dict[str, str] = {}
    for kernel, line in kernels:
        for arch, _ in arches:
            try:
                variants[arch, kernel] = _variant(m.ctx, arch, kernel)
            except UserError as exc:
                m.ctx.fail(line, m.path("kernel"), str(exc))
            names[kernel] = variants[arch, kernel].name
    _unique(m, "kernel", kernels, names)
    return ([(names[k], line) for k, line in kernels],
            {(a, names[k]): v for (a, k), v in variants.items()})


def _matrix(m: Fields) -> tuple[Cell, ...]:
    """arch x kernel x cmdline, less the excluded cells; every kernel resolved per arch."""
    arches = m.strings("arch")
    for name, line in arches:
        if name not in ARCHES:
            m.ctx.fail(line, m.path("arch"), f"unknown arch {name!r}; valid arches: "
                                             f"{', '.join(ARCHES)}")
    _unique(m, "arch", arches, {})
    kernels, variants = _kernels(m, arches)
    cmdlines = _cmdlines(m)
    valid = {"arch": [a for a, _ in arches], "kernel": [k for k, _ in kernels],
             "cmdline": list(cmdlines)}
    excludes = _excludes(m, valid)
    m.done()
    cells = []
    for (arch, _), (kernel, _), (cname, words) in itertools.product(arches, kernels,
                                                                    cmdlines.items()):
        cell = Cell(arch, kernel, cname, _expand(words, arch), variants[arch, kernel])
        if not any(ex.matches(cell) for ex in excludes):
            cells.append(cell)
    if not cells:
        m.fail(None, "the matrix has no cells (everything is excluded)")
    if problem := inputs.kernels_problem(len({(c.arch, c.kernel) for c in cells})):
        m.ctx.fail(kernels[0][1], m.path("kernel"), f"the matrix {problem}")
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


def _compare(top: Fields, ctx: Ctx) -> tuple[CompareSpec | None, list[tuple[str, int]]]:
    """compare: {baseline: KEY=VALUE, metrics: [...], margin: 0.05}; the baseline names
    a value of the matrix; the metrics (with their lines) are checked once steps are read."""
    if not top.has("compare"):
        return None, []
    c = top.sub("compare")
    text = c.take("baseline", str, required=True, text=TEXT_LINE)
    key, sep, value = text.partition("=")
    if not sep or key not in CELL_KEYS:
        c.fail("baseline", f"{text!r}: expected KEY=VALUE, KEY one of {', '.join(CELL_KEYS)}")
    if value not in ctx.valid.get(key, []):
        c.fail("baseline", f"no cell has {key}={value!r} (the matrix's {key}: "
                           f"{', '.join(ctx.valid[key])})")
    metrics = c.strings("metrics") if c.has("metrics") else []
    margin = c.positive("margin", 0.05, most=0.99)
    c.done()
    return CompareSpec((key, value), tuple(m for m, _ in metrics), margin), metrics


def _check_uart(scenario: Scenario, ctx: Ctx) -> None:
    """UART steps need an arch whose board UART is free as the device under test."""
    for i, step in enumerate(scenario.steps):
        if not step.uses_dut_uart:
            continue
        for cell in scenario.cells:
            if step.applies(cell) and not ARCHES[cell.arch].dut_uart:
                ctx.fail(step.line, f"steps[{i}].{step.kind}",
                         f"{cell.arch} has no device-under-test UART; add when: {{arch: aarch64}}")


def _settings(top: Fields) -> dict:
    """repeat, timeouts and memory_mb: each finite and within its bound."""
    timeouts: dict[str, float | None] = {"boot": 60.0, "step": 60.0, "cell": None}
    if top.has("timeouts"):
        t = top.sub("timeouts")
        timeouts = {k: t.positive(k, v, most=inputs.MAX_SECONDS) for k, v in timeouts.items()}
        t.done()
    return dict(repeat=top.positive("repeat", 1, integer=True, most=inputs.MAX_REPEAT),
                boot_timeout=timeouts["boot"], step_timeout=timeouts["step"],
                cell_timeout=timeouts["cell"],
                memory_mb=top.integer("memory_mb", None, *inputs.MEMORY_MB))


def _files(top: Fields) -> tuple[GuestFile, ...]:
    """files: host files and directories each guest has from boot, [{src, dest}].
    src is allowed as a put source is (Fields.host_paths), and may say {arch}."""
    node = top.node_of("files", required=False)
    if node is None:
        return ()
    if not isinstance(node.value, list):
        top.fail("files", f"expected a list of {{src, dest}} mappings, got {kind_of(node.value)}")
    found = []
    for i, item in enumerate(node.value):
        f = Fields(item, top.ctx, f"files[{i}]")
        text = f.take("src", str, required=True, text=TEXT_LINE)
        dest = f.take("dest", str, required=True, text=TEXT_LINE)
        try:
            dest = inputs.guest_path(dest)
        except ValueError as exc:
            f.fail("dest", str(exc))
        found += [GuestFile(path, dest, arch) for arch, path in f.host_paths("src", text).items()]
        f.done()
    return tuple(found)


def _sysctls(top: Fields) -> tuple[tuple[str, str], ...]:
    """sysctl: {name: value}, each set in the guest once it is up."""
    found = []
    for name, value in top.pairs("sysctl"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            top.fail("sysctl", f"{name}: expected a number or a string, got {kind_of(value)}")
        if problem := inputs.sysctl_problem(name, str(value)):
            top.fail("sysctl", problem)
        found.append((name, str(value)))
    return tuple(found)


def _read(path: Path, ctx: Ctx) -> Fields:
    text = inputs.read_text(path, inputs.MAX_SCENARIO_BYTES, "scenario")
    return Fields(_parse(text, ctx), ctx, "")


def dump(data: dict) -> str:
    """A scenario as YAML text, to be loaded (and checked) as any other: lab bisect
    writes its `-- CMD` as one."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def load(path: str | Path, allow: tuple[Path, ...] = ()) -> Scenario:
    """A scenario file, checked whole. allow: directories besides the scenario's
    own that `put` steps may read (lab run --allow-put-from)."""
    path = Path(path)
    ctx = Ctx(path, allow=tuple(p.resolve() for p in allow))
    top = _read(path, ctx)
    name = top.name("name", required=True)
    description = top.take("description", str, "")
    claim, claim_metrics = _claim(top)
    cells = _matrix(top.sub("matrix"))
    ctx.valid = {k: sorted({c.key()[k] for c in cells}) for k in CELL_KEYS}
    settings = _settings(top)
    settings.update(files=_files(top), sysctls=_sysctls(top))
    comparison, compared = _compare(top, ctx)
    steps_node = top.node_of("steps")
    assert steps_node is not None
    steps = tuple(parse_steps(steps_node, ctx, "steps"))
    top.done()
    if problem := inputs.steps_problem(len(steps), settings["repeat"]):
        top.fail("repeat", problem)
    scenario = Scenario(name=name, description=description, path=path, cells=cells,
                        steps=steps, claim=claim, compare=comparison, **settings)
    _check_uart(scenario, ctx)
    _check_claim(scenario, claim_metrics, ctx, "claim")
    _check_claim(scenario, compared, ctx, "compare")
    return scenario


def _check_claim(scenario: Scenario, metrics: list[tuple[str, int]], ctx: Ctx,
                 key: str) -> None:
    """The metrics a claim shows (or compare compares) are metrics the steps define."""
    defined = scenario.metrics()
    for i, (name, line) in enumerate(metrics):
        if name not in defined:
            ctx.fail(line, f"{key}.metrics[{i}]", f"metric {name!r} is not defined by any step "
                                                   f"(defined: {', '.join(defined) or 'none'})")


def load_all(paths: list[str], allow: tuple[Path, ...] = ()) -> list[Scenario]:
    """Scenario files, and every *.yaml in a directory given, in name order. Two
    scenarios of one run must not share a name: it is their results directory."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.yaml"))
            if not found:
                raise UserError(f"{p}: no *.yaml scenarios in this directory")
            files += found
        else:
            files.append(p)
    scenarios = [load(f, allow) for f in files]
    seen: dict[str, Path] = {}
    for s in scenarios:
        if s.name in seen:
            line = _read(s.path, Ctx(s.path)).line("name")
            raise UserError(f"{s.path}:{line}: name: {s.name!r} is also the name of "
                            f"{seen[s.name]}: their results would share one directory")
        seen[s.name] = s.path
    return scenarios
