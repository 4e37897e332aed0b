"""A Linux driver that survives its terminal going away (a dropped SSH session).

Writes to a hung-up tty fail with EIO. Textual's writer thread does not catch
that: it dies, its bounded queue fills, and the app blocks forever on the next
frame, with the job's report never returned. Here the terminal stream drops
writes after the first failure instead, so the app keeps running headless
until the job has committed and it can exit with the report.
"""

from __future__ import annotations

from typing import Any

from textual.drivers.linux_driver import LinuxDriver


class TolerantStream:
    """Wraps the terminal stream: after an OSError, writes and flushes are dropped."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except OSError:
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except OSError:
                self.broken = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class HangupSafeDriver(LinuxDriver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._file = TolerantStream(self._file)  # type: ignore[assignment]  # quacks like the stream, minus EIO
