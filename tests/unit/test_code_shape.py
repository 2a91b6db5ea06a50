"""The shape rules of DESIGN.md that a reader would otherwise check by hand."""

import ast
import functools
import re
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parent.parent.parent / "lab"
SOURCES = sorted(LAB.rglob("*.py"))
#: A function longer than this needs a comment that says why: `# long: <reason>`.
MAX_LINES = 50
#: Each third-party library is imported in exactly one module.
ONE_IMPORTER = {"qemu": "guest/qemu.py", "pexpect": "guest/console.py",
                "rich": "app/report.py", "yaml": "scenario/scenario.py",
                "matplotlib": "app/report.py", "dask": "run/cluster.py",
                "distributed": "run/cluster.py"}


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(LAB)) for p in SOURCES])
def test_no_function_is_long_without_a_reason(path):
    lines = path.read_text().splitlines()
    long = []
    for fn in _functions(path):
        size = fn.end_lineno - fn.lineno + 1
        head = "\n".join(lines[fn.lineno - 1:fn.lineno + 2])
        if size > MAX_LINES and "# long:" not in head:
            long.append(f"{fn.name} ({size} lines)")
    assert not long, f"{path.name}: {', '.join(long)}"


@functools.cache
def _imports(path: Path) -> frozenset[str]:
    """The top-level names path imports (parsed once, for every library's test)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return frozenset(found)


@pytest.mark.parametrize("library, home", sorted(ONE_IMPORTER.items()))
def test_each_third_party_library_is_imported_in_one_module(library, home):
    importers = sorted(str(p.relative_to(LAB)) for p in SOURCES if library in _imports(p))
    assert importers in ([home], []), f"{library} is imported by {importers}, not only {home}"


def test_no_subprocess_outside_the_one_path():
    """Every external command runs through lab/host/proc.py (deadline, process group)."""
    call = re.compile(r"\bsubprocess\.(run|Popen|call|check_call|check_output)\(")
    users = [p.name for p in SOURCES if p.name != "proc.py" and call.search(p.read_text())]
    assert not users, f"subprocess used directly in {users}"
