"""A progress bar for management commands, with nothing to install.

On a terminal it redraws one line (``\\r``); into a log file or a pipe it writes a plain line
every tenth of the way, so cron mail and container logs stay readable.
"""

import time
from typing import TextIO


class ProgressBar:
    def __init__(self, out: TextIO, total: int | None, *, unit: str = "rows", width: int = 30):
        # A command's self.stderr (OutputWrapper) would end every write with a newline.
        self.out = getattr(out, "_out", out)
        self.total = total
        self.unit = unit
        self.width = width
        self.started = time.monotonic()
        self.done = 0
        self._tty = bool(getattr(out, "isatty", lambda: False)())
        self._last_tenth = -1

    def update(self, done: int) -> None:
        self.done = done
        elapsed = time.monotonic() - self.started
        if self.total:
            share = min(done / self.total, 1.0)
            filled = int(share * self.width)
            line = (
                f"[{'#' * filled}{'.' * (self.width - filled)}] {share:6.1%} "
                f"{done:,}/{self.total:,} {self.unit} {elapsed:6.1f} s"
            )
            tenth = int(share * 10)
        else:
            line = f"{done:,} {self.unit} {elapsed:6.1f} s"
            tenth = self._last_tenth + 1 if done else -1
        if self._tty:
            self.out.write("\r" + line)
            self.out.flush()
        elif tenth > self._last_tenth:
            self._last_tenth = tenth
            self.out.write(line + "\n")

    def finish(self) -> float:
        """End the bar's line; returns the seconds it ran."""
        if self._tty:
            self.out.write("\n")
            self.out.flush()
        return time.monotonic() - self.started
