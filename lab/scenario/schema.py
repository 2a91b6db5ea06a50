"""Checked reading of a scenario's node tree: every error names file, line and key.

lab.scenario.scenario turns YAML into Nodes (a value and its line); the step kinds
(lab/scenario/steps/) and the scenario loader read them through Fields. No YAML here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NoReturn

from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import CELL_KEYS, Metric, Selector

#: Control characters a scenario string may hold: multi-line text (a command, a
#: regex) takes tabs and newlines, one line (a name, a path, a device) none. Any
#: other control character (NUL, ESC, Ctrl-C, DEL...) would break the console
#: protocol, the guest's tty or junit.xml, so it is refused; `uart: send` alone
#: takes any text (TEXT_RAW): its bytes go to the device under test.
TEXT_LINES, TEXT_LINE, TEXT_RAW = "lines", "line", "raw"
_CONTROL = {TEXT_LINES: re.compile(r"[\x00-\x08\x0b-\x1f\x7f]"),
            TEXT_LINE: re.compile(r"[\x00-\x1f\x7f]")}


def text_problem(value: str, text: str = TEXT_LINES) -> str | None:
    """Why a string from a scenario cannot be used (None: it can)."""
    bad = _CONTROL[text].search(value) if text in _CONTROL else None
    if bad is None:
        return None
    where = f" at offset {bad.start()}" if len(value) > 1 else ""
    return f"control character {bad.group()!r}{where} is not allowed" + (
        " (one line: no tab or newline)" if text == TEXT_LINE and bad.group() in "\t\n" else "")


class Node:
    """A YAML value with the line it starts on (1-based)."""

    __slots__ = ("value", "line")

    def __init__(self, value: Any, line: int):
        self.value = value
        self.line = line

    def plain(self) -> Any:
        """The value with the Nodes stripped, all the way down."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class Ctx:
    """The file being loaded, and what a step may refer to in it."""

    def __init__(self, path: Path, valid: dict[str, list[str]] | None = None,
                 allow: tuple[Path, ...] = ()):
        self.path = path
        #: Values of the matrix keys, for when: selectors.
        self.valid: dict[str, list[str]] = valid or {}
        #: Resolved directories outside the scenario's own that `put` may read
        #: (lab run --allow-put-from).
        self.allow = allow

    def fail(self, line: int, key: str, message: str) -> NoReturn:
        raise UserError(f"{self.path}:{line}: {key}: {message}")


def join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(
                type(value), type(value).__name__)


def _is(value: Any, types: Any) -> bool:
    """isinstance, except that a boolean is no number unless asked for."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _names(types: Any) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("nothing" if t is type(None) else kind_of(t()) for t in types)


class Fields:
    """A mapping node consumed key by key; leftovers are unknown keys."""

    def __init__(self, node: Node, ctx: Ctx, key: str):
        if not isinstance(node.value, dict):
            ctx.fail(node.line, key or "(top)", f"expected a mapping, got {kind_of(node.value)}")
        self.node, self.ctx, self.key = node, ctx, key
        self.left: dict[str, Node] = dict(node.value)

    def path(self, k: str) -> str:
        return join(self.key, k)

    def has(self, k: str) -> bool:
        return k in self.node.value

    def line(self, k: str) -> int:
        return self.node.value[k].line if k in self.node.value else self.node.line

    def fail(self, k: str | None, message: str) -> NoReturn:
        """An error at key k of this mapping (None: the mapping itself)."""
        if k is None:
            self.ctx.fail(self.node.line, self.key or "(top)", message)
        self.ctx.fail(self.line(k), self.path(k), message)

    def node_of(self, k: str, required: bool = True) -> Node | None:
        if k not in self.left:
            if required:
                self.ctx.fail(self.node.line, self.path(k), "required key is missing")
            return None
        return self.left.pop(k)

    def take(self, k: str, types: Any, default: Any = ..., required: bool = False, *,
             text: str = TEXT_LINES) -> Any:
        """The value at k, of one of types; a string is checked as text says."""
        if k not in self.left:
            if required or default is ...:
                self.ctx.fail(self.node.line, self.path(k), "required key is missing")
            return default
        n = self.left.pop(k)
        if not _is(n.value, types):
            self.ctx.fail(n.line, self.path(k),
                          f"expected {_names(types)}, got {kind_of(n.value)}")
        if isinstance(n.value, str) and (problem := text_problem(n.value, text)):
            self.ctx.fail(n.line, self.path(k), problem)
        return n.value

    def sub(self, k: str) -> Fields:
        node = self.node_of(k)
        assert node is not None
        return Fields(node, self.ctx, self.path(k))

    def done(self) -> None:
        for k, n in self.left.items():
            self.ctx.fail(n.line, self.path(k), "unknown key")

    # -- typed values

    def regex(self, k: str) -> str | None:
        text = self.take(k, str, None)
        if text is not None:
            try:
                re.compile(text)
            except re.error as exc:
                self.fail(k, f"bad regex {text!r}: {exc}")
        return text

    def positive(self, k: str, default: Any, *, most: float, integer: bool = False) -> Any:
        """A finite number above zero and at most `most` (an integer, at least 1, if
        asked). Every count and duration has an upper bound (lab.core.inputs)."""
        if integer:
            return self.integer(k, default, 1, int(most))
        value = self.take(k, (int, float), default)
        if k in self.node.value and (problem := inputs.range_problem(value, 0, most,
                                                                    above=True)):
            self.fail(k, problem)
        return value

    def integer(self, k: str, default: Any, lo: int, hi: int) -> Any:
        """An integer in [lo, hi]."""
        value = self.take(k, int, default)
        if k in self.node.value and (problem := inputs.range_problem(value, lo, hi)):
            self.fail(k, problem)
        return value

    def finite(self, k: str, types: Any = (int, float)) -> Any:
        """A value of types (None when absent) that, if a number, is finite."""
        value = self.take(k, types, None)
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(k, f"must be a finite number, got {value}")
        return value

    def name(self, k: str, default: Any = ..., required: bool = False) -> Any:
        """A string that becomes a path component (lab.core.inputs.name_problem)."""
        value = self.take(k, str, default, required, text=TEXT_LINE)
        if isinstance(value, str) and (problem := inputs.name_problem(value)):
            self.fail(k, problem)
        return value

    def strings(self, k: str) -> list[tuple[str, int]]:
        """A string or a list of strings, with their lines."""
        n = self.node_of(k)
        assert n is not None
        items = n.value if isinstance(n.value, list) else [n]
        out = []
        for i, item in enumerate(items):
            where = f"{self.path(k)}[{i}]" if isinstance(n.value, list) else self.path(k)
            if not isinstance(item.value, str) or not item.value:
                self.ctx.fail(item.line, where,
                              f"expected a non-empty string, got {kind_of(item.value)}")
            if problem := text_problem(item.value, TEXT_LINE):
                self.ctx.fail(item.line, where, problem)
            out.append((item.value, item.line))
        if not out:
            self.ctx.fail(n.line, self.path(k), "must not be empty")
        return out

    def pairs(self, k: str) -> tuple[tuple[str, Any], ...]:
        """A mapping of plain values, as sorted-by-appearance pairs."""
        node = self.node_of(k, required=False)
        if node is None:
            return ()
        if not isinstance(node.value, dict):
            self.ctx.fail(node.line, self.path(k), f"expected a mapping, got {kind_of(node.value)}")
        for kk, vv in node.value.items():
            _check_plain(vv, self.ctx, join(self.path(k), kk))
        return tuple((kk, vv.plain()) for kk, vv in node.value.items())

    def host_paths(self, k: str, text: str) -> dict[str, Path]:
        """The host path text names, by arch: relative to the scenario's directory,
        resolved (links and `..` included), and under it or a directory the user
        allowed (lab run --allow-put-from), so a scenario cannot carry host files
        such as /etc/shadow into a guest and its results. `{arch}` in text stands
        for each arch of the matrix."""
        base = self.ctx.path.parent
        roots = (base.resolve(), *self.ctx.allow)
        arches = self.ctx.valid.get("arch", []) if "{arch}" in text else [""]
        found = {}
        for arch in arches:
            name = text.replace("{arch}", arch)
            try:
                path = (base / name).resolve(strict=True)
            except FileNotFoundError:
                self.fail(k, f"no such file or directory: {base / name}")
            except (OSError, RuntimeError) as exc:      # a symlink loop, a permission
                self.fail(k, f"cannot resolve {name!r}: {exc}")
            if not any(path.is_relative_to(root) for root in roots):
                self.fail(k, f"{name!r} is {path}, outside the scenario's directory "
                             f"{roots[0]}; `lab run --allow-put-from DIR` allows files under DIR")
            found[arch] = path
        return found

    def selector(self, k: str) -> Selector:
        node = self.node_of(k, required=False)
        return Selector() if node is None else selector(node, self.ctx, self.path(k))

    def exit_code(self, k: str) -> int | None:
        """An exit code to expect: 0 to 255 (default 0), or `any` (None)."""
        value = self.take(k, (int, str), 0)
        if isinstance(value, str) and value != "any":
            self.fail(k, "an integer, or 'any'")
        if isinstance(value, int) and not 0 <= value <= 255:
            self.fail(k, f"an exit code is 0 to 255, got {inputs.show(value)}")
        return None if value == "any" else value

    def items(self, k: str, most: int | None = None, what: str = "items") -> list[Fields]:
        """A list of mappings (empty when absent), at most `most` of them."""
        node = self.node_of(k, required=False)
        if node is None:
            return []
        if not isinstance(node.value, list):
            self.ctx.fail(node.line, self.path(k), f"expected a list, got {kind_of(node.value)}")
        if most is not None and len(node.value) > most:
            self.ctx.fail(node.line, self.path(k),
                          f"{len(node.value):,} {what}, over the limit of {most:,}")
        return [Fields(item, self.ctx, f"{self.path(k)}[{i}]") for i, item in enumerate(node.value)]

    def metrics(self) -> tuple[Metric, ...]:
        return tuple(_metric(item) for item in self.items("metrics"))


def _check_plain(node: Node, ctx: Ctx, key: str) -> None:
    """Every string in a plain value is text, every number finite."""
    value = node.value
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, ctx, join(key, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, ctx, f"{key}[{i}]")
    elif isinstance(value, str) and (problem := text_problem(value)):
        ctx.fail(node.line, key, problem)
    elif isinstance(value, float) and not math.isfinite(value):
        ctx.fail(node.line, key, f"must be a finite number, got {value}")


METRIC_FORMATS = ("", "hex")


def metric_name(f: Fields, k: str, name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        f.fail(k, "a metric name is a word: [A-Za-z0-9_]")
    return name


def _metric(f: Fields) -> Metric:
    name = metric_name(f, "name", f.take("name", str, required=True, text=TEXT_LINE))
    regex = f.regex("regex")
    if regex is None:   # the guest tools' convention: METRIC <name> <value> <unit>
        regex = rf"^METRIC {name} (\S+)"
    if re.compile(regex).groups < 1:
        f.fail("regex", "needs a group that captures the number")
    fmt = f.take("format", str, "")
    if fmt not in METRIC_FORMATS:
        f.fail("format", f"one of: hex (or leave it out), got {fmt!r}")
    metric = Metric(name, regex, f.take("unit", str, ""), fmt)
    f.done()
    return metric


def selector(node: Node, ctx: Ctx, key: str, valid: dict[str, list[str]] | None = None
             ) -> Selector:
    """{arch: ..., kernel: ..., cmdline: ...}: each a value or a list of values that the
    matrix has."""
    valid = valid if valid is not None else ctx.valid
    f = Fields(node, ctx, key)
    terms = []
    for k in list(f.left):
        if k not in CELL_KEYS:
            f.fail(k, f"unknown key; use {', '.join(CELL_KEYS)}")
        values = f.strings(k)
        for value, line in values:
            if value not in valid.get(k, ()):
                ctx.fail(line, f.path(k), f"{value!r} is not in the matrix "
                                          f"({', '.join(valid.get(k, ()))})")
        terms.append((k, tuple(v for v, _ in values)))
    if not terms:
        ctx.fail(node.line, key, "must name at least one of arch, kernel, cmdline")
    return Selector(tuple(terms))
