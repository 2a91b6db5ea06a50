"""Kconfig fragments: parsing, variants, and verification of the final .config.

A variant NAME is the union of kernel-configs/variants/NAME.config (every
arch) and kernel-configs/variants/NAME.<arch>.config (one arch); at least one
must exist. A path to a .config file is a variant of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

from lab.errors import UserError
from lab.model import ArchProfile, KconfigRequest, KernelVariant
from lab.paths import KERNEL_CONFIGS

_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")


def parse_fragment(path: Path) -> list[KconfigRequest]:
    """Every option a fragment requests, with its file and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read fragment: {exc.strerror}") from None
    requests = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if m := _SET.match(line):
            value = m.group(2).strip()
            if value == "":
                raise UserError(f"{path}:{lineno}: CONFIG_{m.group(1)} has no value")
            requests.append(KconfigRequest(m.group(1), value, path, lineno))
        elif m := _UNSET.match(line):
            requests.append(KconfigRequest(m.group(1), "n", path, lineno))
        elif line and not line.startswith("#"):
            raise UserError(
                f"{path}:{lineno}: not a Kconfig line: {raw!r} "
                "(expected CONFIG_NAME=value or '# CONFIG_NAME is not set')"
            )
    return requests


def parse_config(path: Path) -> dict[str, str]:
    """A .config as name -> value; options 'not set' map to 'n'."""
    values = {}
    for line in path.read_text().splitlines():
        if m := _SET.match(line):
            values[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def variant_names(arch: ArchProfile) -> list[str]:
    """The variants available for an arch (from kernel-configs/variants/)."""
    names = set()
    for path in (KERNEL_CONFIGS / "variants").glob("*.config"):
        stem = path.name[: -len(".config")]
        name, _, suffix = stem.partition(".")
        if not suffix or suffix == arch.name:
            names.add(name)
    return sorted(names)


def resolve_variant(arch: ArchProfile, spec: str) -> KernelVariant:
    """A variant name, or a path to a fragment file."""
    if spec.endswith(".config") or "/" in spec:
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"kernel fragment {spec!r}: no such file")
        return KernelVariant(path.name[: -len(".config")] or path.name, (path.resolve(),))
    variants = KERNEL_CONFIGS / "variants"
    files = tuple(
        p for p in (variants / f"{spec}.config", variants / f"{spec}.{arch.name}.config")
        if p.is_file()
    )
    if not files or "." in spec:
        raise UserError(
            f"unknown kernel variant {spec!r} for {arch.name}; valid variants: "
            f"{', '.join(variant_names(arch))}, or a path to a .config fragment"
        )
    return KernelVariant(spec, files)


def fragments_for(arch: ArchProfile, variant: KernelVariant) -> list[Path]:
    """base.config, the arch fragment, then the variant's, in merge order."""
    return [KERNEL_CONFIGS / "base.config", KERNEL_CONFIGS / f"{arch.name}.config",
            *variant.fragments]


def effective_requests(fragments: list[Path]) -> dict[str, KconfigRequest]:
    """What the fragments ask for, a later fragment overriding an earlier one."""
    wanted: dict[str, KconfigRequest] = {}
    for path in fragments:
        for req in parse_fragment(path):
            wanted[req.name] = req
    return wanted


def _show(value: str | None) -> str:
    return "not set" if value in (None, "n") else value


def verify(wanted: dict[str, KconfigRequest], final: dict[str, str]) -> list[str]:
    """One message per requested option that did not take effect."""
    problems = []
    for name, req in wanted.items():
        got = final.get(name, "n")
        if got != req.value and not (req.value == "n" and got == "n"):
            hint = ""
            if name not in final:
                hint = " (no such option on this arch, or its dependencies are not met)"
            problems.append(
                f"CONFIG_{name}: requested {_show(req.value)} at {req.source}:{req.line}, "
                f"got {_show(final.get(name))}{hint}"
            )
    return problems


def variant_options(wanted: dict[str, KconfigRequest], variant: KernelVariant,
                    final: dict[str, str]) -> dict[str, str]:
    """The variant's own options as found in the final .config."""
    own = {req.name for req in wanted.values() if req.source in variant.fragments}
    return {f"CONFIG_{name}": _show(final.get(name)) for name in sorted(own)}
