"""Kconfig fragments: parsing, variants, and verification of the final .config.

A variant NAME is the union of kernel-configs/variants/NAME.config (every
arch) and kernel-configs/variants/NAME.<arch>.config (one arch); at least one
must exist. A path to a .config file is a variant of its own, named by its
file's stem. Either with "+dbg" after it is that variant with
kernel-configs/dbg/ on top (debug information, the gdb scripts).

A fragment's values reach kbuild, which `include`s them into make and shell
commands: a value is y, m, n, a number, or a quoted string of the few options
in STRING_OPTIONS, in their own characters. Nothing else is read, so no
fragment can run a host command (a backtick or `$(...)` in a string) or make
kbuild read a host file (CONFIG_INITRAMFS_SOURCE, CONFIG_EXTRA_FIRMWARE...).
"""

from __future__ import annotations

import re
from pathlib import Path

from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import ArchProfile, KconfigRequest, KernelVariant
from lab.core.paths import KERNEL_CONFIGS

_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
#: A value that is not a string: y, m, n, a decimal or a hex number.
_PLAIN = re.compile(r"[ymn]|-?[0-9]+|0x[0-9a-fA-F]+")
#: The string options a fragment may set, each with the characters its value may
#: hold. Every other string option is refused: kbuild reads host files or runs
#: host programs named by several (INITRAMFS_SOURCE, EXTRA_FIRMWARE(_DIR),
#: MODULE_SIG_KEY, SYSTEM_TRUSTED_KEYS, SYSTEM_REVOCATION_KEYS,
#: UNUSED_KSYMS_WHITELIST, BUILTIN_DTB_SOURCE...). LOCALVERSION becomes part
#: of a directory name (/lib/modules/RELEASE), so it holds no '/'.
STRING_OPTIONS = {
    "LOCALVERSION": "[A-Za-z0-9_.+-]*",
    "DEFAULT_HOSTNAME": "[A-Za-z0-9.-]*",
    "CMDLINE": "[A-Za-z0-9 _.,:=+/@-]*",
    "DEFAULT_INIT": "[A-Za-z0-9_./-]*",
}
#: Characters a shell or make would act on, refused in every value by name.
METACHARACTERS = "`$;|&<>\\\"'(){}[]*?!#~%"


def value_problem(name: str, value: str) -> str | None:
    """Why CONFIG_<name>=<value> may not be in a fragment (None: it may)."""
    if value == "":
        return "has no value"
    quoted = len(value) >= 2 and value[0] == value[-1] == '"'
    inner = value[1:-1] if quoted else value
    bad = next((c for c in inner if c in METACHARACTERS or not c.isprintable()), None)
    if bad is not None:
        return (f"the value {value!r} holds {bad!r}: shell and make metacharacters "
                f"({METACHARACTERS}) and control characters are not allowed")
    if not quoted:
        return None if _PLAIN.fullmatch(value) else \
            f"the value {value!r} is not y, m, n, a number or a quoted string"
    if name not in STRING_OPTIONS:
        return ("a fragment may not set this string option; the string options allowed: "
                + ", ".join(f"CONFIG_{o}" for o in STRING_OPTIONS))
    if not re.fullmatch(STRING_OPTIONS[name], inner):
        return f"the value {value!r} may hold only {STRING_OPTIONS[name]}"
    return None


def parse_fragment(path: Path) -> list[KconfigRequest]:
    """Every option a fragment requests, with its file and line; a value that
    could reach the host through kbuild (value_problem) is refused."""
    text = inputs.read_text(path, inputs.MAX_FRAGMENT_BYTES, "fragment")
    requests = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if m := _SET.match(line):
            value = m.group(2).strip()
            if problem := value_problem(m.group(1), value):
                raise UserError(f"{path}:{lineno}: CONFIG_{m.group(1)}: {problem}")
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


#: VARIANT+dbg: the variant with debug information and the kernel's gdb scripts
#: (kernel-configs/dbg/), the kernel lab debug boots.
DBG = "+dbg"


def with_dbg(arch: ArchProfile, variant: KernelVariant) -> KernelVariant:
    """The +dbg form of a variant: its fragments, then kernel-configs/dbg/'s."""
    if variant.name.endswith(DBG):
        return variant
    overlay = tuple(p for p in (KERNEL_CONFIGS / "dbg" / "dbg.config",
                                KERNEL_CONFIGS / "dbg" / f"dbg.{arch.name}.config")
                    if p.is_file())
    return KernelVariant(variant.name + DBG, variant.fragments + overlay)


def resolve_variant(arch: ArchProfile, spec: str) -> KernelVariant:
    """A variant name, or a path to a fragment file; either with +dbg after it."""
    if spec.endswith(DBG) and len(spec) > len(DBG):
        return with_dbg(arch, resolve_variant(arch, spec[: -len(DBG)]))
    if spec.endswith(".config") or "/" in spec:
        return _fragment_variant(Path(spec))
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
    if problem := inputs.name_problem(spec):
        raise UserError(f"kernel variant: {problem}")
    for path in files:
        parse_fragment(path)
    return KernelVariant(spec, files)


def _fragment_variant(path: Path) -> KernelVariant:
    """A fragment file as a variant, named by its file's stem; read and checked now,
    so that a bad line fails before anything is built."""
    if not path.is_file():
        raise UserError(f"kernel fragment {str(path)!r}: no such file")
    name = path.name[: -len(".config")] if path.name.endswith(".config") else path.stem
    if problem := inputs.name_problem(name):
        raise UserError(f"kernel fragment {str(path)!r}: its name becomes part of cell ids "
                        f"and cache paths: {problem}")
    parse_fragment(path)
    return KernelVariant(name, (path.resolve(),))


def fragments_for(arch: ArchProfile, variant: KernelVariant) -> list[Path]:
    """base.config, KUnit and its suites (as modules), the arch fragment, then the
    variant's, in merge order."""
    kunit = KERNEL_CONFIGS / "kunit"
    return [KERNEL_CONFIGS / "base.config", kunit / "kunit.config",
            *sorted((kunit / "suites").glob("*.config")),
            KERNEL_CONFIGS / f"{arch.name}.config", *variant.fragments]


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
