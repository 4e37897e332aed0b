"""Where memtui leans on Textual's internals, gathered in one place (quarantined, as memray does).

Each of these depends on something Textual does not promise; a Textual upgrade (pyproject pins the
major version) starts by checking this module and the hook named below.

- ``EngineAppMeta``: Textual's private metaclass (``textual.message_pump._MessagePumpMeta``) joined with
  ``ABCMeta``, so an ``EngineApp`` subclass that forgets an abstract method fails at construction, not
  mid-run. Textual gives App a metaclass of its own, and Python refuses two unrelated ones.
- ``HangupSafeDriver`` (with ``TolerantStream``): a Linux driver that survives its terminal going away (a
  dropped SSH session). Writes to a hung-up tty fail with EIO. Textual's writer thread does not catch
  that: it dies, its bounded queue fills, and the app blocks forever on the next frame, with the job's
  report never returned. Here the terminal stream (the driver's private ``_file``) drops writes after the
  first failure instead, so the app keeps running headless until the job has committed and it can exit
  with the report.
- Not movable here, named for the same upgrade check: ``EngineApp.on_event`` (memtui/tui/engine_app.py)
  overrides ``App.on_event`` to route keys and pastes through ``memtui.tui.key_gate.KeyGate`` (in the
  order typed, each to the screen in front by then), relying on Textual delivering every key to the app's
  ``on_event`` first and on ``Event.is_forwarded``.
"""

from __future__ import annotations

from abc import ABCMeta
from typing import Any

from textual.drivers.linux_driver import LinuxDriver
from textual.message_pump import _MessagePumpMeta


class EngineAppMeta(_MessagePumpMeta, ABCMeta):
    """Textual's metaclass with abstract methods enforced."""


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
