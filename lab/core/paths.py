"""Where the lab's own data and its cache live."""

import os
from pathlib import Path

#: The project tree: kernel-configs/, images/, drivers/, scenarios/.
ROOT = Path(os.environ.get("LAB_ROOT") or Path(__file__).resolve().parents[2])
KERNEL_CONFIGS = ROOT / "kernel-configs"
IMAGES = ROOT / "images"
DRIVERS = ROOT / "drivers"


def cache_dir() -> Path:
    """The build cache: ~/.cache/lab, or $LAB_CACHE."""
    return Path(os.environ.get("LAB_CACHE") or Path.home() / ".cache" / "lab")
