"""Progress callbacks, and one build command run through lab.host.proc.

Every command of the build layer goes through run(): an argv list, a
deadline, the output appended to the entry's log, BuildError with the log's
tail when it fails or overruns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lab.core.deadline import Deadline
from lab.core.errors import BuildError
from lab.host import proc

#: progress(phase, detail): the build's current phase and its latest line.
Progress = Callable[[str, str], None]
#: The phase of a message the user must see even if nothing else is shown
#: (a corrupt cache entry that is being rebuilt).
WARNING = "warning"

#: Pinned, so that two builds of the same inputs give the same bytes (the version, "#1",
#: else counts the links of a build tree: lab bisect knows a comment-only commit by
#: its image's bytes).
REPRODUCIBLE_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 2026",
    "KBUILD_BUILD_VERSION": "1",
    "KBUILD_BUILD_USER": "lab",
    "KBUILD_BUILD_HOST": "lab",
    "LC_ALL": "C",
}


def quiet(phase: str, detail: str) -> None:
    """The default progress: say nothing."""


def run(argv: Sequence[str | os.PathLike[str]], *, phase: str, deadline: Deadline | float,
        log: Path | None = None, progress: Progress = quiet, cwd: Path | None = None,
        answer: bool = False, env: dict[str, str] | None = None) -> str:
    """Run one build command; raise BuildError (with the log's tail) if it fails
    or overruns its deadline. With answer, return its stdout (stderr goes to
    the log only); otherwise its output is in the log, not in memory. env is
    added to the pinned, reproducible one."""
    done = proc.run(argv, deadline=deadline, log_path=log, cwd=cwd,
                    env={**REPRODUCIBLE_ENV, **(env or {})},
                    what=phase, progress=lambda line: progress(phase, line),
                    error=BuildError, keep_output=answer, merge_stderr=not answer)
    return done.output if answer else ""
