"""Deadlines passed down, never unbounded waits (labgrid's Timeout, pexpect's end_time)."""

from __future__ import annotations

import math
import time


class Deadline:
    """A point in monotonic time. Callees ask how much is left; nobody restarts it."""

    __slots__ = ("end", "seconds")

    def __init__(self, seconds: float):
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a deadline needs a finite, non-negative number of seconds, "
                             f"got {seconds!r}")
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def within(self, seconds: float) -> Deadline:
        """A deadline at most seconds from now, and never later than this one."""
        sub = Deadline(min(seconds, self.remaining()))
        return sub

    def __repr__(self) -> str:
        return f"Deadline({self.seconds:g} s, {self.remaining():.2f} s left)"
