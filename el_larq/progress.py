"""Progress of long loops on stderr: count, rate and time left.

Evaluating EL-ResNet50 on ImageNet's 50,000 validation images takes hours in LCE's
host interpreter; `Progress` says how far it got and when it will end. On a terminal it
rewrites one line; in a log (not a terminal) it writes a line after the first step and
then every `interval` seconds, so a log stays short.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """`h:mm:ss` (or `m:ss` under an hour).

    # Example
        ```python
        format_duration(3725)  # '1:02:05'
        ```
    """
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts done units of a known total and reports rate and ETA.

    # Arguments
        label: What runs, e.g. `"evaluate model.tflite"`.
        total: Units in all (None or 0: unknown, no ETA).
        unit: The unit's name, plural.
        stream: Where to write (None: `sys.stderr` at construction).
        interval: Seconds between lines when `stream` is not a terminal.
        clock: Seconds as a float (for tests).

    # Example
        ```python
        progress = Progress("evaluate model.tflite", total=10000)
        for x, y in batches:
            ...
            progress.update(len(y))
        progress.close()
        # evaluate model.tflite: 2,560/10,000 images (25.6 %), 812 images/s, ETA 0:09
        ```
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "images",
        stream: TextIO | None = None,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.unit = label, total or None, unit
        self.stream = sys.stderr if stream is None else stream
        self.interval, self.clock = interval, clock
        self.done = 0
        self.start = clock()
        self._last: float | None = None
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def rate(self) -> float:
        """Units per second so far."""
        return self.done / max(self.clock() - self.start, 1e-9)

    def line(self) -> str:
        """The current progress line."""
        rate = self.rate
        if self.total:
            count = f"{self.done:,}/{self.total:,} {self.unit} ({self.done / self.total:.1%})"
            eta = f", ETA {format_duration((self.total - self.done) / rate)}" if rate else ""
        else:
            count, eta = f"{self.done:,} {self.unit}", ""
        return f"{self.label}: {count}, {rate:,.1f} {self.unit}/s{eta}"

    def update(self, n: int) -> None:
        """Count `n` more done units and report if it is time to."""
        self.done += n
        now = self.clock()
        if self._tty:
            self.stream.write("\r" + self.line() + "\033[K")
        elif self._last is None or now - self._last >= self.interval:
            self.stream.write(self.line() + "\n")
        else:
            return
        self._last = now
        self.stream.flush()

    def close(self) -> None:
        """Report the end: units, time and rate."""
        elapsed = self.clock() - self.start
        end = (
            f"{self.label}: {self.done:,} {self.unit} in {format_duration(elapsed)}, "
            f"{self.rate:,.1f} {self.unit}/s"
        )
        self.stream.write(("\r" + end + "\033[K" if self._tty else end) + "\n")
        self.stream.flush()
