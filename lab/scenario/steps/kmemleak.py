"""`kmemleak:` scan the kernel's memory for leaks; a leak of one of the named
modules fails the step.

    - kmemleak: [pl011_lab]

`lab driver --debug` ends every scenario with it, after the module is unloaded:
that is when a buffer a driver forgot to free loses its last reference. It needs a
kernel with CONFIG_DEBUG_KMEMLEAK (the debug variant); on another kernel the step
fails, since a scan that did not run must never read as "no leaks".

kmemleak leaves objects younger than MIN_AGE_S out of a scan, so the step waits
that long first. An unloaded module's addresses no longer resolve to symbols, so
when a kmemleak kernel loads a module the `module:` step records where the module
lies (its /proc/modules line and every section's start) in the guest's RECORD; the
scan attributes a leak to a module whose frames fall there.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.artifacts import kconfig
from lab.core.model import KernelBuild, Step
from lab.parse import kmemleak as leaks
from lab.scenario.schema import Fields
from lab.scenario.steps.base import Context

#: kmemleak's own minimum age of an object it reports (mm/kmemleak.c: 5 s), plus a margin.
MIN_AGE_S = 5.5
#: Where, in the guest, module: steps record each loaded module's place (a file per
#: module, a block per load, each block opened by LOAD).
RECORD = "/run/lab-modules"
LOAD = "=== load"
CONTROL = "/sys/kernel/debug/kmemleak"
_MODULE_NAME = re.compile(r"[A-Za-z0-9_]+")


@functools.cache
def _config_has_kmemleak(config: Path) -> bool:
    return kconfig.parse_config(config).get("DEBUG_KMEMLEAK") == "y"


def enabled(kernel: KernelBuild | None) -> bool:
    """Whether the kernel was built with kmemleak."""
    return kernel is not None and _config_has_kmemleak(kernel.config)


def module_name(load: str) -> str:
    """The name /proc/modules gives what `module: {load: ...}` loads."""
    return Path(load).name.removesuffix(".ko").replace("-", "_")


def record_command(name: str) -> str | None:
    """The guest command that appends where module `name` lies now (its
    /proc/modules line, every section's start: see lab.parse.kmemleak) to its file under
    RECORD, one block per load; None for a name no module can have."""
    if not _MODULE_NAME.fullmatch(name):
        return None
    return (f"mkdir -p {RECORD} && {{ echo '{LOAD}'; grep {shlex.quote(f'^{name} ')} "
            f"/proc/modules; grep -r . /sys/module/{name}/sections/; }} "
            f">>{RECORD}/{name} 2>/dev/null; true")


def ranges(record: str, name: str) -> list[leaks.AddressRange]:
    """Every place module `name` occupied, one load after another, from its record."""
    return [r for block in record.split(LOAD) for r in leaks.module_ranges(block, block, name)]


@dataclass(frozen=True, kw_only=True)
class Kmemleak(Step):
    kind = "kmemleak"
    #: The modules whose leaks fail the step.
    modules: tuple[str, ...] = ()

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Kmemleak:
        names = []
        for text, _ in f.strings("kmemleak"):
            names.append(module_name(text))
            if not _MODULE_NAME.fullmatch(names[-1]):
                f.fail("kmemleak", f"{text!r} is not a module name")
        return cls(name=common.pop("name") or f"kmemleak: no leak of {', '.join(names)}",
                   modules=tuple(names), **common)

    def shown(self) -> tuple[str, str]:
        return "kmemleak scan", f"no leak allocated by {', '.join(self.modules) or 'any module'}"

    def execute(self, ctx: Context) -> list[str]:
        if not enabled(ctx.kernel):
            return ["kmemleak: this kernel has no CONFIG_DEBUG_KMEMLEAK, so nothing was "
                    "scanned (lab driver --debug, or --kernel debug)"]
        # Twice: a scan reports an object only when the one before saw it unchanged.
        scan = f"sleep {MIN_AGE_S} && echo scan >{CONTROL} && echo scan >{CONTROL} && cat {CONTROL}"
        r = ctx.guest.run(scan, ctx.timeout, ctx.output_file)
        ctx.exit_code = r.exit_code
        if r.exit_code != 0:
            return [f"kmemleak scan failed (exit code {r.exit_code}): {r.output.strip()[-300:]}"]
        found = leaks.parse(r.output_file.read_text(errors="replace") if r.output_file
                            else r.output)
        problems, attributed = [], 0
        for name in self.modules:
            record = ctx.guest.run(f"cat {RECORD}/{name} 2>/dev/null; true", ctx.timeout).output
            mine = leaks.leaks_of(found, name, ranges(record, name))
            attributed += len(mine)
            if mine:
                problems.append(f"kernel kmemleak: {len(mine)} unreferenced object(s) "
                                f"allocated by {name}: {mine[0].text.splitlines()[0].strip()}")
        if len(found) > attributed:
            ctx.notes.append(f"{len(found) - attributed} other suspected leak(s), not "
                             f"{', '.join(self.modules)}'s (in the step's output)")
        return problems
