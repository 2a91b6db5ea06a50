"""The layer rules of docs/architecture.md, checked against the code.

The layer list is read from the table in docs/architecture.md, so the document and
the packages cannot drift apart: a package that is not in the table, or a row with no
package, fails here first.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SOURCES = sorted(LAB.rglob("*.py"))
#: A row of the layer table: | 1 | `core` | ... |
_ROW = re.compile(r"^\| (\d+) \| `(\w+)` \|", re.M)


def layers() -> list[str]:
    rows = _ROW.findall(ARCHITECTURE.read_text())
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1)), "rows out of order"
    return [name for _, name in rows]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def syntax(path: Path) -> ast.Module:
    """path parsed once for the whole session (the checks only walk the trees)."""
    return ast.parse(path.read_text())


@functools.cache
def lab_imports(path: Path) -> tuple[tuple[str, int], ...]:
    """Every lab module path imports, anywhere in it (a function's import counts),
    with its line; `from lab.x import y` counts as lab.x.y when that is a module."""
    found = []
    for node in ast.walk(syntax(path)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "lab"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "lab":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if sub in MODULES else node.module, node.lineno))
    return tuple(found)


MODULES = {module_name(p): p for p in SOURCES}


def package_of(module: str) -> str | None:
    """The layer a module belongs to; None for lab itself and lab.__main__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (LAB / parts[1]).is_dir() else None


def test_the_table_names_each_package_once_and_every_package_is_in_it():
    packages = sorted(p.name for p in LAB.iterdir()
                      if p.is_dir() and (p / "__init__.py").exists())
    assert sorted(layers()) == packages
    assert len(set(layers())) == len(layers())


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(LAB)) for p in SOURCES])
def test_a_module_imports_only_its_own_package_and_those_before_it(path):
    order = {name: i for i, name in enumerate(layers())}
    own = package_of(module_name(path))
    wrong = []
    for target, line in lab_imports(path):
        theirs = package_of(target)
        if own is None:   # lab/__init__.py and lab/__main__.py
            allowed = module_name(path) == "lab.__main__" and theirs == "app" \
                or target == "lab" and theirs is None
        else:
            allowed = theirs is not None and order[theirs] <= order[own] or target == "lab"
        if not allowed:
            wrong.append(f"line {line}: {target}")
    assert not wrong, f"{module_name(path)} ({own}) imports from a later layer: {wrong}"


def test_core_imports_no_other_lab_package():
    for path in (LAB / "core").glob("*.py"):
        others = {t for t, _ in lab_imports(path) if package_of(t) != "core"}
        assert not others, f"{path.name} imports {others}"


def test_there_is_no_import_circle():
    graph = {m: {t for t, _ in lab_imports(p) if t in MODULES and t != m}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}   # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                circle = path[path.index(t):] + [t]
                pytest.fail("import circle: " + " -> ".join(circle))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@functools.cache
def _calls(path: Path) -> tuple[tuple[str, int], ...]:
    """Dotted names of everything path calls or raises, with lines."""
    def dotted(node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            return f"{dotted(node.value)}.{node.attr}"
        return ""
    out = []
    for node in ast.walk(syntax(path)):
        if isinstance(node, ast.Call):
            out.append((dotted(node.func), node.lineno))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            out.append((dotted(exc), node.lineno))
    return tuple(out)


def _offenders(forbidden: re.Pattern, allowed) -> list[str]:
    return [f"{p.relative_to(LAB)}:{line} {name}" for p in SOURCES if not allowed(p)
            for name, line in _calls(p) if forbidden.fullmatch(name)]


def test_only_app_prints_or_exits():
    forbidden = re.compile(r"print|exit|quit|sys\.exit|os\._exit|SystemExit"
                           r"|sys\.(stdout|stderr)\.write")
    assert not _offenders(forbidden, lambda p: package_of(module_name(p)) == "app"
                          or p.name == "__main__.py")


def test_only_app_touches_the_terminal():
    """No lower layer reads stdin, writes stdout or stderr any other way (os.write to
    their descriptors), or sets a terminal's mode: those are a person's, and app's."""
    found = []
    for path in SOURCES:
        if package_of(module_name(path)) == "app":
            continue
        for node in ast.walk(syntax(path)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "sys" and node.attr in ("stdin", "stdout", "stderr"):
                found.append(f"{path.relative_to(LAB)}:{node.lineno} sys.{node.attr}")
            elif isinstance(node, ast.Import):
                found += [f"{path.relative_to(LAB)}:{node.lineno} import {a.name}"
                          for a in node.names if a.name in ("termios", "tty")]
    assert not found


def test_only_host_proc_spawns():
    forbidden = re.compile(r"subprocess\.\w+|os\.(fork|forkpty|exec\w*|spawn\w*|posix_spawn\w*"
                           r"|system|popen)|pty\.\w+|multiprocessing\.\w+")
    assert not _offenders(forbidden, lambda p: p == LAB / "host" / "proc.py")


def test_only_the_cache_writes_json_files_and_renames_into_place():
    """json.dump to a file and os.replace/os.rename/Path.rename live in host/cache.py
    (entries built aside and renamed into place, atomic JSON) and host/gc.py (which
    only removes); everyone else calls cache.write_json or cache.entry."""
    forbidden = re.compile(r"json\.dump|os\.replace|os\.rename|[\w.]+\.rename")
    home = {LAB / "host" / "cache.py", LAB / "host" / "gc.py",
            # a run directory in /tmp, not a cache entry: it appears under its name
            # with its owner file in it, so another lab's sweep never takes it
            LAB / "guest" / "qemu.py"}
    assert not _offenders(forbidden, lambda p: p in home)


THIRD_PARTY = {"qemu": "guest/monitor.py", "yaml": "scenario/scenario.py",
               "rich": "app/report.py", "matplotlib": "app/report.py",
               "dask": "run/cluster.py", "distributed": "run/cluster.py",
               "pytest": "app/pytest_plugin.py", "pexpect": "guest/console.py"}


@pytest.mark.parametrize("library, home", sorted(THIRD_PARTY.items()))
def test_each_third_party_library_has_one_importer(library, home):
    def imports(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(syntax(path)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        return names
    importers = sorted(str(p.relative_to(LAB)) for p in SOURCES if library in imports(p))
    assert importers in ([home], []), f"{library} is imported by {importers}, not only {home}"


# ---------------------------------------------------------------- registrations
# An arch, a step kind and a command are each one file plus one registration; a
# file without its registration is dead code that looks alive.

def _modules_in(package: str, skip: tuple[str, ...] = ()) -> set[str]:
    return {p.stem for p in (LAB / package).glob("*.py") if p.stem != "__init__"} - set(skip)


def test_every_arch_file_is_registered_and_named_for_its_arch():
    from lab import arches
    registered = {m.__name__.rsplit(".", 1)[1]: m.PROFILE.name for m in arches._MODULES}
    assert set(registered) == _modules_in("arches")
    assert all(module == name for module, name in registered.items())
    assert set(arches.ARCHES) == set(registered.values())
    for name in arches.ARCHES:
        assert (ROOT / "kernel-configs" / f"{name}.config").is_file(), name


def test_every_step_module_is_a_registered_kind_or_a_named_helper():
    from lab.scenario import steps
    kinds = {parse.__module__.rsplit(".", 1)[1] for parse in steps.PARSERS.values()}
    assert kinds.isdisjoint(steps.HELPERS)
    assert kinds | set(steps.HELPERS) == _modules_in("scenario/steps")


def test_every_step_kind_parses_under_its_own_key():
    """The YAML key a kind is registered under is the kind its steps report."""
    import inspect

    from lab.scenario import steps
    for key, parse in steps.PARSERS.items():
        module = inspect.getmodule(parse)
        kinds = {obj.kind for obj in vars(module).values()
                 if inspect.isclass(obj) and obj.__module__ == module.__name__
                 and getattr(obj, "kind", "")}
        assert kinds == {key}, (key, kinds)


def test_every_command_module_is_registered_and_its_commands_reach_lab_help():
    from lab.app import cli, commands
    registered = {m.__name__.rsplit(".", 1)[1] for m in commands.MODULES}
    assert registered == _modules_in("app/commands", skip=("options",))
    sub = next(a for a in cli.parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert parser.get_default("func") is not None, f"lab {name} has no func"
