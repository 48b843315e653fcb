"""The honest parts of the job view: progress from training steps, a steady ETA, a clean log tail.

Progress is the trainer's own step count where the backend reports it (step k of N), never a blend of
pipeline steps and training steps, so it cannot jump from 20% back to 2%. The rate is measured over
the training steps seen so far (model loading does not count), and the time left shown never goes up:
an estimate above the previous one keeps counting down the previous one.
"""

from __future__ import annotations

import re
import time

# a tqdm bar ("45%|####5     | 9/20 [00:03<00:04, 2.6it/s]") or a bare "Map: 100%" line
_BAR = re.compile(r"(\d+%\|.*\|)|(^\s*[\w ]{0,40}:\s+\d+%\s*$)|(\|\s*\d+/\d+\s*\[[\d:<?,. ]+)")


def clean_log_lines(lines) -> list[str]:
    """One line per event: a carriage-return-redrawn line becomes its last state, progress bars and
    blank lines go, and a line repeated at once is kept once."""
    out: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n").split("\r")[-1].rstrip()
        if not line.strip() or _BAR.search(line):
            continue
        if out and out[-1] == line:
            continue
        out.append(line)
    return out


class StepRate:
    """Steps per second over the training steps seen, and a time left that never goes up."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None
        self._left: tuple[float, float] | None = None  # (when, seconds left) last shown

    def see(self, step: int | None) -> None:
        if step is None:
            return
        now = self.clock()
        if self.first is None or step < self.first[1]:
            self.first = (now, step)
        if self.last is None or step != self.last[1]:
            self.last = (now, step)

    def rate(self) -> float | None:
        """Steps per second, once two observations two seconds apart show progress."""
        if self.first is None or self.last is None:
            return None
        dt, ds = self.last[0] - self.first[0], self.last[1] - self.first[1]
        return ds / dt if dt >= 2.0 and ds > 0 else None

    def left(self, total: int | None) -> float | None:
        """Seconds left to ``total`` steps; None until there is a rate. Never more than the last answer
        minus the time since (0 means: about to finish)."""
        rate = self.rate()
        if rate is None or total is None or self.last is None:
            return None
        now = self.clock()
        estimate = max(0.0, (total - self.last[1]) / rate - (now - self.last[0]))
        if self._left is not None:
            when, shown = self._left
            estimate = min(estimate, max(0.0, shown - (now - when)))
        self._left = (now, estimate)
        return estimate
