"""Bad inputs that cannot be plain files with an `# expect:` header in
tests/data/bad-scenarios: binary files, FIFOs, symlinks, huge or sparse files.

make(d) builds them in a directory; tests/unit/test_trust_inputs.py checks each
refusal and bench/refusal.py times it, from this one list.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
ENCODINGS = DATA / "bad-inputs"
HEAD = "name: a\nmatrix: {arch: [aarch64], kernel: [nokpti]}\n"


@dataclass(frozen=True)
class Case:
    name: str
    cls: str              # the class of issue 16 it belongs to
    path: Path            # the scenario to load
    expect: str           # the refusal starts with path + expect
    allow: tuple[Path, ...] = ()


def corpus_class(path: Path) -> str:
    """The class a corpus file names on its second line (`# class: NAME`); the
    files from before the classes are "schema"."""
    lines = path.read_text().splitlines()
    m = re.match(r"# class: (\S+)", lines[1]) if len(lines) > 1 else None
    return m.group(1) if m else "schema"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _put(d: Path, name: str, src: str) -> Path:
    return _write(d / f"{name}.yaml", HEAD + f"steps:\n  - put: {{src: '{src}', dest: /tmp/x}}\n")


def _kernel(d: Path, name: str, fragment: Path) -> Path:
    return _write(d / f"{name}.yaml", "name: a\nmatrix: {arch: aarch64, kernel: "
                                      f"'{fragment}'}}\nsteps: [{{run: 'true'}}]\n")


def encodings() -> list[Case]:
    """Scenario files that are not UTF-8 text (tests/data/bad-inputs)."""
    e = ENCODINGS
    return [
        Case("latin-1", "encoding", e / "latin1.yaml", ":1: (file): not UTF-8 text: byte 0xe9"),
        Case("png", "encoding", e / "image.png.yaml", ":1: (file): not UTF-8 text: byte 0x89"),
        Case("utf-16", "encoding", e / "utf16.yaml",
             ":1: (file): not UTF-8 text: byte 0xff at offset 0 (UTF-16 text: save it as UTF-8)"),
        Case("nul-byte", "encoding", e / "nul-byte.yaml", ":3: (file): a NUL byte at offset 65"),
        Case("escape-char", "encoding", e / "control-char.yaml",
             ":3: (yaml): character 0x1b is not allowed in YAML"),
    ]


def make(d: Path) -> list[Case]:
    """Every generated case, built under d (an empty directory)."""
    cases = encodings()
    for frag, line in (("latin1-fragment.config", 2), ("binary-fragment.config", 1)):
        cases.append(Case(frag, "encoding", _kernel(d, frag, ENCODINGS / frag),
                          f":2: matrix.kernel: {ENCODINGS / frag}:{line}: (file): not UTF-8"))
    huge = d / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(64 << 20)                 # sparse: refused by its size, never read
    cases.append(Case("64-MiB-file", "yaml", huge, ": cannot read scenario: 67,108,864 bytes, "
                                                    "over the bound of 1,048,576"))
    many = _write(d / "nodes.yaml", HEAD + "steps:\n" + "  - {run: 'true', name: x}\n" * 8000)
    cases.append(Case("40k-nodes", "yaml", many, ":2001: (yaml): more than 10,000 YAML nodes"))
    os.mkfifo(d / "fifo.yaml")
    cases.append(Case("fifo-scenario", "yaml", d / "fifo.yaml",
                      ": cannot read scenario: a FIFO, not a regular file"))
    (d / "passwd").symlink_to("/etc/passwd")
    cases.append(Case("put-symlink", "put", _put(d, "link", "passwd"),
                      ":4: steps[0].put.src: 'passwd' is /etc/passwd, outside the "
                      "scenario's directory"))
    (d / "etc").symlink_to("/etc")
    cases.append(Case("put-symlinked-dir", "put", _put(d, "linkdir", "etc/passwd"),
                      ":4: steps[0].put.src: 'etc/passwd' is /etc/passwd, outside"))
    os.mkfifo(d / "pipe")
    cases.append(Case("put-fifo", "put", _put(d, "fifo-put", "pipe"),
                      f":4: steps[0].put.src: {d.resolve()}/pipe: a FIFO, not a regular file"))
    cases.append(Case("put-dev-zero-allowed", "put", _put(d, "zero", "/dev/zero"),
                      ":4: steps[0].put.src: /dev/zero: a device, not a regular file",
                      allow=(Path("/dev"),)))
    with (d / "big.bin").open("wb") as f:
        f.truncate((1 << 20) + 1)
    cases.append(Case("put-over-1MiB", "put", _put(d, "big", "big.bin"),
                      f":4: steps[0].put.src: {d.resolve()}/big.bin: 1,048,577 bytes, over "
                      "the bound of 1,048,576"))
    return cases
