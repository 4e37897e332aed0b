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
- ``use_unjoined_thread_workers``: Textual runs a ``thread=True`` worker in the event loop's default
  executor, which ``asyncio.run`` joins on the way out (Python 3.11: with no bound). A job whose stop's
  grace ran out (memtui.runner: a user's function that never returns) is still in that thread: the app
  exited, the screen was restored, and ``App.run`` never returned, with the report unwritten. The loop's
  default executor here does not wait on shutdown; whoever must wait for the job waits on it explicitly.
- Not movable here, named for the same upgrade check: ``EngineApp.on_event`` (memtui/tui/engine_app.py)
  overrides ``App.on_event`` to route keys and pastes through ``memtui.tui.key_gate.KeyGate`` (in the
  order typed, each to the screen in front by then), relying on Textual delivering every key to the app's
  ``on_event`` first and on ``Event.is_forwarded``.
"""

from __future__ import annotations

import asyncio
from abc import ABCMeta
from concurrent.futures import ThreadPoolExecutor
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


class _UnjoinedExecutor(ThreadPoolExecutor):
    """A default executor whose shutdown never waits for a thread still running (see the module's note)."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=cancel_futures)


def use_unjoined_thread_workers(loop: asyncio.AbstractEventLoop) -> None:
    """Give the app's loop a default executor that its exit does not join (thread workers run there)."""
    loop.set_default_executor(_UnjoinedExecutor(thread_name_prefix="memtui-worker"))
