"""The guest architectures: one file each (data only), registered here.

Adding an arch: write lab/arches/NAME.py with PROFILE = ArchProfile(...), add its
module to _MODULES, and add kernel-configs/NAME.config (docs/architecture.md).
"""

from lab.arches import aarch64, x86_64
from lab.core.errors import UserError
from lab.core.model import ArchProfile

#: The registration: one line per arch module.
_MODULES = (aarch64, x86_64)
ARCHES: dict[str, ArchProfile] = {m.PROFILE.name: m.PROFILE for m in _MODULES}


def get_arch(name: str) -> ArchProfile:
    try:
        return ARCHES[name]
    except KeyError:
        raise UserError(
            f"unknown arch {name!r}; valid arches: {', '.join(ARCHES)}"
        ) from None
