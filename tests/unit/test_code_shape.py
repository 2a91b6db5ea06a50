"""Function length, the shape rule docs/architecture.md leaves to this file."""

import ast
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parent.parent.parent / "lab"
SOURCES = sorted(LAB.rglob("*.py"))
#: A function longer than this needs a comment that says why: `# long: <reason>`.
MAX_LINES = 50


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
