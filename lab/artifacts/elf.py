"""The function names an ELF file defines (a vmlinux, a module's .ko): what
`lab debug --break` checks a name against before gdb is started, since gdb with
pending breakpoints on would wait forever for a name that exists nowhere.

64-bit little-endian ELF only (both guest arches); a file that is not one is a
UserError naming it. Reads the section headers and the .symtab, nothing else.
"""

from __future__ import annotations

import struct
from pathlib import Path

from lab.core.errors import UserError

_ELF64_LE = b"\x7fELF\x02\x01"
_SHT_SYMTAB = 2
_STT_FUNC = 2
_SHN_UNDEF = 0
#: e_shoff, e_shentsize, e_shnum; a section header; a symbol (Elf64_Sym).
_EHDR = struct.Struct("<40xQ10xHH2x")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")


def functions(path: Path) -> frozenset[str]:
    """The names of the functions path defines (STT_FUNC, not undefined)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if not data.startswith(_ELF64_LE) or len(data) < 64:
        raise UserError(f"{path}: not a 64-bit little-endian ELF file")
    try:
        return frozenset(_functions(data))
    except (struct.error, IndexError, UnicodeDecodeError):
        raise UserError(f"{path}: a damaged ELF file (its symbol table cannot be "
                        "read)") from None


def _functions(data: bytes) -> set[str]:
    shoff, shentsize, shnum = _EHDR.unpack_from(data)
    sections = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    names: set[str] = set()
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if kind != _SHT_SYMTAB or not entsize:
            continue
        strtab = sections[link]
        strings = data[strtab[4]:strtab[4] + strtab[5]]
        for at in range(offset, offset + size - entsize + 1, entsize):
            name, info, _other, shndx, _value, _size = _SYM.unpack_from(data, at)
            if info & 0xF == _STT_FUNC and shndx != _SHN_UNDEF and name:
                end = strings.index(b"\0", name)
                names.add(strings[name:end].decode("ascii"))
    return names
