"""A venv of its own for a peer tool a benchmark measures the lab against (labgrid,
pytest-html), made on first use under ~/.cache/lab/bench/: the tool never enters the
lab's own environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path.home() / ".cache" / "lab" / "bench"


def tool_python(name: str, dist: str, requirements: list[str]) -> tuple[Path, str]:
    """The python of venv NAME, and the version of distribution dist in it. The venv is
    made on first use by installing the first of requirements that pip can install
    (the pinned range first, then any version)."""
    venv = ROOT / name
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"making {venv} (python3 -m venv; pip install {requirements[0]})",
              file=sys.stderr)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        for i, requirement in enumerate(requirements):
            if subprocess.run([*pip, requirement], check=i == len(requirements) - 1
                              ).returncode == 0:
                break
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                              f"print(m.version({dist!r}))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return python, version
