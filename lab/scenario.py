"""Strict loading of YAML lab scenarios into frozen dataclasses.

The only module that imports yaml. Everything is checked before anything
boots: duplicate keys, unknown keys, wrong types, unknown arches and kernel
variants, bad regexes. Every error names the file, the line and the key.
The format is documented key by key in docs/scenarios.md.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from pathlib import Path

import yaml

from lab import kconfig
from lab.arches import ARCHES
from lab.errors import UserError
from lab.model import Cell, Metric, Scenario, Step

#: Placeholders allowed in command-line sets, from the arch profile.
PLACEHOLDERS = ("kpti_on", "kpti_off")
FACTS = ("kpti_active", "boot_s", "kernel_release", "accel", "tainted")
STEP_KINDS = ("run", "put", "module", "uart", "qmp", "hmp", "assert")
TRANSFERS = ("guest-to-host", "host-to-guest")
_COMMON = {"name", "when", "timeout", "allow_faults"}


class Node:
    """A YAML value with the line it starts on (1-based)."""

    def __init__(self, value, line: int):
        self.value = value
        self.line = line


class _Ctx:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, line: int, key: str, message: str):
        raise UserError(f"{self.path}:{line}: {key}: {message}")


def _to_nodes(node: yaml.Node, loader: yaml.SafeLoader, ctx: _Ctx, key: str) -> Node:
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
                ctx.fail(knode.start_mark.line + 1, _join(key, k),
                         f"duplicate key (first at line {out[k].line})")
            out[k] = _to_nodes(vnode, loader, ctx, _join(key, k))
        return Node(out, line)
    if isinstance(node, yaml.SequenceNode):
        return Node([_to_nodes(n, loader, ctx, f"{key}[{i}]") for i, n in enumerate(node.value)],
                    line)
    return Node(loader.construct_object(node), line)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _parse(text: str, ctx: _Ctx) -> Node:
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


class _Map:
    """A mapping node being consumed key by key; leftovers are unknown keys."""

    def __init__(self, node: Node, ctx: _Ctx, key: str):
        if not isinstance(node.value, dict):
            ctx.fail(node.line, key or "(top)", f"expected a mapping, got {_kind(node.value)}")
        self.node, self.ctx, self.key = node, ctx, key
        self.left = dict(node.value)

    def path(self, k: str) -> str:
        return _join(self.key, k)

    def has(self, k: str) -> bool:
        return k in self.node.value

    def line(self, k: str) -> int:
        return self.node.value[k].line if k in self.node.value else self.node.line

    def take(self, k: str, types, default=..., required: bool = False):
        if k not in self.left:
            if required or default is ...:
                self.ctx.fail(self.node.line, self.path(k), "required key is missing")
            return default
        n = self.left.pop(k)
        if types is Node:
            return n
        if not _is(n.value, types):
            self.ctx.fail(n.line, self.path(k), f"expected {_names(types)}, got {_kind(n.value)}")
        return n.value

    def done(self) -> None:
        for k, n in self.left.items():
            self.ctx.fail(n.line, self.path(k), "unknown key")


def _is(value, types) -> bool:
    """isinstance, except that a boolean is no number unless asked for."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value),
                                                                            type(value).__name__)


def _names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(_kind(t()) if t is not type(None) else "nothing" for t in types)


def _regex(ctx: _Ctx, line: int, key: str, text: str | None) -> str | None:
    if text is None:
        return None
    try:
        re.compile(text)
    except re.error as exc:
        ctx.fail(line, key, f"bad regex {text!r}: {exc}")
    return text


def _strings(m: _Map, k: str) -> list[tuple[str, int]]:
    """A string or a list of strings, with lines."""
    n = m.take(k, Node)
    items = n.value if isinstance(n.value, list) else [n]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item.value, str) or not item.value:
            m.ctx.fail(item.line, f"{m.path(k)}[{i}]" if isinstance(n.value, list) else m.path(k),
                       f"expected a non-empty string, got {_kind(item.value)}")
        out.append((item.value, item.line))
    if not out:
        m.ctx.fail(n.line, m.path(k), "must not be empty")
    return out


def _positive(m: _Map, k: str, default):
    value = m.take(k, (int, float), default)
    if value is not None and value <= 0:
        m.ctx.fail(m.line(k), m.path(k), f"must be positive, got {value}")
    return value


# ---------------------------------------------------------------- matrix

def _matrix(m: _Map, ctx: _Ctx) -> tuple[Cell, ...]:
    arches = _strings(m, "arch")
    for name, line in arches:
        if name not in ARCHES:
            ctx.fail(line, m.path("arch"), f"unknown arch {name!r}; valid arches: "
                                          f"{', '.join(ARCHES)}")
    kernels = _strings(m, "kernel")
    for kernel, line in kernels:
        for arch, _ in arches:
            spec = kernel
            if spec.endswith(".config") or "/" in spec:
                spec = str((ctx.path.parent / spec).resolve())
            try:
                kconfig.resolve_variant(ARCHES[arch], spec)
            except UserError as exc:
                ctx.fail(line, m.path("kernel"), str(exc))
    cmdlines: dict[str, tuple[str, ...]] = {"default": ()}
    if m.has("cmdline"):
        sets = _Map(m.take("cmdline", Node), ctx, m.path("cmdline"))
        cmdlines = {}
        for name, node in sets.node.value.items():
            value = sets.take(name, (str, type(None)))
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                ctx.fail(node.line, sets.path(name), "a set name is letters, digits, _ . -")
            for ph in re.findall(r"\{([^}]*)\}", value or ""):
                if ph not in PLACEHOLDERS:
                    ctx.fail(node.line, sets.path(name), f"unknown placeholder {{{ph}}}; "
                                                         f"known: {', '.join(PLACEHOLDERS)}")
            cmdlines[name] = tuple((value or "").split())
        if not cmdlines:
            ctx.fail(sets.node.line, m.path("cmdline"), "must name at least one set")
    excludes = []
    if m.has("exclude"):
        node = m.take("exclude", Node)
        if not isinstance(node.value, list):
            ctx.fail(node.line, m.path("exclude"), f"expected a list, got {_kind(node.value)}")
        for i, item in enumerate(node.value):
            excludes.append(_when(item, ctx, f"{m.path('exclude')}[{i}]",
                                  {"arch": [a for a, _ in arches],
                                   "kernel": [k for k, _ in kernels],
                                   "cmdline": list(cmdlines)}))
    m.done()
    cells = []
    for (arch, _), (kernel, _), (cname, words) in itertools.product(arches, kernels,
                                                                    cmdlines.items()):
        profile = ARCHES[arch]
        expanded = tuple(w.format(kpti_on=profile.kpti_on, kpti_off=profile.kpti_off)
                         for w in words)
        cell = Cell(arch, kernel, cname, expanded)
        if not any(all(cell.key()[k] in v for k, v in ex) for ex in excludes):
            cells.append(cell)
    if not cells:
        ctx.fail(m.node.line, m.key, "the matrix has no cells (everything is excluded)")
    return tuple(cells)


def _when(node: Node, ctx: _Ctx, key: str, valid: dict[str, list[str]]):
    m = _Map(node, ctx, key)
    out = []
    for k in list(m.left):
        if k not in valid:
            ctx.fail(m.line(k), m.path(k), f"unknown key; use {', '.join(valid)}")
        values = _strings(m, k)
        for value, line in values:
            if value not in valid[k]:
                ctx.fail(line, m.path(k), f"{value!r} is not in the matrix "
                                          f"({', '.join(valid[k])})")
        out.append((k, tuple(v for v, _ in values)))
    if not out:
        ctx.fail(node.line, key, "must name at least one of arch, kernel, cmdline")
    return tuple(out)


# ---------------------------------------------------------------- steps

def _metrics(m: _Map) -> tuple[Metric, ...]:
    node = m.take("metrics", Node, None)
    if node is None:
        return ()
    if not isinstance(node.value, list):
        m.ctx.fail(node.line, m.path("metrics"), f"expected a list, got {_kind(node.value)}")
    out = []
    for i, item in enumerate(node.value):
        mm = _Map(item, m.ctx, f"{m.path('metrics')}[{i}]")
        name = mm.take("name", str, required=True)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            m.ctx.fail(mm.line("name"), mm.path("name"), "a metric name is a word: [A-Za-z0-9_]")
        regex = mm.take("regex", str, None)
        if regex is None:   # the guest tools' convention: METRIC <name> <value> <unit>
            regex = rf"^METRIC {name} (\S+)"
        _regex(m.ctx, mm.line("regex"), mm.path("regex"), regex)
        if re.compile(regex).groups < 1:
            m.ctx.fail(mm.line("regex"), mm.path("regex"), "needs a group that captures the number")
        out.append(Metric(name, regex, mm.take("unit", str, "")))
        mm.done()
    return tuple(out)


def _mapping_pairs(m: _Map, k: str) -> tuple[tuple[str, object], ...]:
    node = m.take(k, Node, None)
    if node is None:
        return ()
    if not isinstance(node.value, dict):
        m.ctx.fail(node.line, m.path(k), f"expected a mapping, got {_kind(node.value)}")

    def plain(n: Node):
        if isinstance(n.value, dict):
            return {kk: plain(vv) for kk, vv in n.value.items()}
        if isinstance(n.value, list):
            return [plain(vv) for vv in n.value]
        return n.value
    return tuple((kk, plain(vv)) for kk, vv in node.value.items())


def _step(node: Node, ctx: _Ctx, key: str, valid: dict[str, list[str]]) -> Step:
    m = _Map(node, ctx, key)
    kinds = [k for k in STEP_KINDS if m.has(k)]
    if len(kinds) != 1:
        ctx.fail(node.line, key, f"a step has exactly one of {', '.join(STEP_KINDS)}"
                                 + (f" (found {', '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    common = dict(
        kind=kind, line=node.line,
        when=_when(m.take("when", Node), ctx, m.path("when"), valid) if m.has("when") else (),
        timeout=_positive(m, "timeout", None),
        allow_faults=m.take("allow_faults", bool, False),
    )
    name = m.take("name", str, None)
    if kind == "run":
        command = m.take("run", str)
        exit_node = m.left.get("expect_exit")
        expect_exit = m.take("expect_exit", (int, str), 0)
        if isinstance(expect_exit, str) and expect_exit != "any":
            ctx.fail(exit_node.line, m.path("expect_exit"), "an integer, or 'any'")
        step = Step(name=name or f"run: {command[:50]}", command=command,
                    expect_exit=None if expect_exit == "any" else expect_exit,
                    match=_regex(ctx, m.line("match"), m.path("match"), m.take("match", str, None)),
                    no_match=_regex(ctx, m.line("no_match"), m.path("no_match"),
                                    m.take("no_match", str, None)),
                    metrics=_metrics(m), **common)
    elif kind == "put":
        p = _Map(m.take("put", Node), ctx, m.path("put"))
        src = p.take("src", str, required=True)
        if not (ctx.path.parent / src).is_file():
            ctx.fail(p.line("src"), p.path("src"), f"no such file: {ctx.path.parent / src}")
        mode = p.take("mode", (int, str), 0o644)
        if isinstance(mode, str):
            try:
                mode = int(mode, 8)
            except ValueError:
                ctx.fail(p.line("mode"), p.path("mode"), f"not an octal mode: {mode!r}")
        dest = p.take("dest", str, required=True)
        p.done()
        step = Step(name=name or f"put: {dest}", src=str(ctx.path.parent / src), dest=dest,
                    mode=mode, **common)
    elif kind == "module":
        p = _Map(m.take("module", Node), ctx, m.path("module"))
        load, unload = p.take("load", str, ""), p.take("unload", str, "")
        if bool(load) == bool(unload):
            ctx.fail(p.node.line, p.key, "exactly one of load, unload")
        args = p.take("args", str, "")
        p.done()
        step = Step(name=name or (f"load {load}" if load else f"unload {unload}"),
                    load=load, unload=unload, args=args, **common)
    elif kind == "uart":
        p = _Map(m.take("uart", Node), ctx, m.path("uart"))
        if p.has("transfer"):
            transfer = p.take("transfer", str)
            if transfer not in TRANSFERS:
                ctx.fail(p.line("transfer"), p.path("transfer"),
                         f"one of {', '.join(TRANSFERS)}, got {transfer!r}")
            device = p.take("device", str, required=True)
            nbytes, count = p.take("bytes", int, 65536), p.take("count", int, 1)
            for k, v in (("bytes", nbytes), ("count", count)):
                if v < 1:
                    ctx.fail(p.line(k), p.path(k), f"must be at least 1, got {v}")
            metric = p.take("metric", str, f"uart_{transfer.replace('-', '_')}_kib_s")
            p.done()
            step = Step(name=name or f"uart {transfer} {nbytes} bytes", transfer=transfer,
                        device=device, nbytes=nbytes, count=count, metric_name=metric,
                        **common)
        else:
            send = p.take("send", str, "")
            expect = _regex(ctx, p.line("expect"), p.path("expect"), p.take("expect", str, None))
            if not send and expect is None:
                ctx.fail(p.node.line, p.key, "needs send, expect, transfer")
            p.done()
            step = Step(name=name or "uart", send=send, match=expect, **common)
    elif kind == "qmp":
        p = _Map(m.take("qmp", Node), ctx, m.path("qmp"))
        step = Step(name=name or "qmp", qmp_command=p.take("command", str, required=True),
                    qmp_args=_mapping_pairs(p, "args"), qmp_expect=_mapping_pairs(p, "expect"),
                    **common)
        p.done()
    elif kind == "hmp":
        hmp = m.take("hmp", str)
        step = Step(name=name or f"hmp: {hmp}", hmp=hmp,
                    match=_regex(ctx, m.line("match"), m.path("match"), m.take("match", str, None)),
                    metrics=_metrics(m), **common)
    else:
        p = _Map(m.take("assert", Node), ctx, m.path("assert"))
        fact, metric = p.take("fact", str, ""), p.take("metric", str, "")
        if bool(fact) == bool(metric):
            ctx.fail(p.node.line, p.key, "exactly one of fact, metric")
        if fact and fact not in FACTS:
            ctx.fail(p.line("fact"), p.path("fact"), f"unknown fact {fact!r}; known: "
                                                     f"{', '.join(FACTS)}")
        ratio_to = p.take("ratio_to", str, "")
        equals_metric = p.take("equals_metric", str, "")
        for k, v in (("ratio_to", ratio_to), ("equals_metric", equals_metric)):
            if v and not metric:
                ctx.fail(p.line(k), p.path(k), "goes with metric, not fact")
        equals = p.take("equals", (bool, int, float, str), None)
        lo, hi = p.take("min", (int, float), None), p.take("max", (int, float), None)
        if ratio_to and equals is not None:
            ctx.fail(p.line("equals"), p.path("equals"), "a ratio takes min or max")
        if equals is None and lo is None and hi is None and not equals_metric:
            ctx.fail(p.node.line, p.key, "needs equals, equals_metric, min or max")
        p.done()
        step = Step(name=name or f"assert {fact or metric}", fact=fact, metric=metric,
                    ratio_to=ratio_to, equals_metric=equals_metric, equals=equals, min=lo,
                    max=hi, **common)
    m.done()
    return step


def _steps(node: Node, ctx: _Ctx, key: str, valid: dict[str, list[str]]) -> list[Step]:
    """A list of steps; a `rounds: N` block repeats its own steps N times in order,
    so that measurements to be compared alternate instead of running in blocks."""
    if not isinstance(node.value, list) or not node.value:
        ctx.fail(node.line, key, "expected a non-empty list of steps")
    out: list[Step] = []
    for i, item in enumerate(node.value):
        path = f"{key}[{i}]"
        if isinstance(item.value, dict) and "rounds" in item.value:
            m = _Map(item, ctx, path)
            times = m.take("rounds", int)
            if times < 1:
                ctx.fail(m.line("rounds"), m.path("rounds"), f"must be at least 1, got {times}")
            inner = _steps(m.take("steps", Node, required=True), ctx, m.path("steps"), valid)
            m.done()
            for r in range(times):
                out += [replace(s, name=f"{s.name} (round {r + 1}/{times})") for s in inner]
        else:
            out.append(_step(item, ctx, path, valid))
    return out


# ---------------------------------------------------------------- scenario

def load(path: str | Path) -> Scenario:
    path = Path(path)
    ctx = _Ctx(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read scenario: {exc.strerror}") from None
    top = _Map(_parse(text, ctx), ctx, "")
    name = top.take("name", str, required=True)
    description = top.take("description", str, "")
    cells = _matrix(_Map(top.take("matrix", Node, required=True), ctx, "matrix"), ctx)
    valid = {"arch": sorted({c.arch for c in cells}), "kernel": sorted({c.kernel for c in cells}),
             "cmdline": sorted({c.cmdline for c in cells})}
    repeat = top.take("repeat", int, 1)
    if repeat < 1:
        ctx.fail(top.line("repeat"), "repeat", f"must be at least 1, got {repeat}")
    timeouts = {"boot": 60.0, "step": 60.0}
    if top.has("timeouts"):
        t = _Map(top.take("timeouts", Node), ctx, "timeouts")
        timeouts = {k: _positive(t, k, v) for k, v in timeouts.items()}
        t.done()
    memory = top.take("memory_mb", int, None)
    steps = tuple(_steps(top.take("steps", Node, required=True), ctx, "steps", valid))
    top.done()
    for step in steps:
        if step.kind == "uart":
            for cell in cells:
                if step.applies(cell) and not ARCHES[cell.arch].dut_uart:
                    ctx.fail(step.line, f"steps[{steps.index(step)}].uart",
                             f"{cell.arch} has no device-under-test UART; "
                             "add when: {arch: aarch64}")
    return Scenario(name=name, description=description, path=path, cells=cells, steps=steps,
                    repeat=repeat, boot_timeout=timeouts["boot"], step_timeout=timeouts["step"],
                    memory_mb=memory)


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


def resolve_kernel(scenario: Scenario, kernel: str) -> str:
    """A kernel spec as the build layer takes it (fragment paths relative to the scenario)."""
    if kernel.endswith(".config") or "/" in kernel:
        return str((scenario.path.parent / kernel).resolve())
    return kernel
