"""A blocking call that may never return (Dask's connect, a cluster's start or close, a DNS lookup),
waited for with a deadline and a stop flag.

The call runs in a daemon thread; the caller waits in short steps and leaves when the call returns,
when ``stopped()`` becomes true (a signal: ``Stopped``), or at the deadline (``Late``). What the call
returns after the caller left goes to ``on_late`` (a client or a cluster is closed, not leaked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: How often the waiting caller looks at the stop flag.
STEP_S = 0.1


class Stopped(Exception):
    """The caller was asked to stop before the call returned."""


class Late(Exception):
    """The call did not return by its deadline."""


class _Call(Generic[T]):
    def __init__(self, fn: Callable[[], T], on_late: Callable[[T], object] | None) -> None:
        self._fn = fn
        self._on_late = on_late
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as exc:
            self.error = exc
            self._done.set()
            return
        with self._lock:
            self.result = result
            abandoned = self._abandoned
            self._done.set()
        if abandoned and self._on_late is not None:
            try:
                self._on_late(result)
            except Exception:
                pass

    def wait(self, step: float) -> bool:
        return self._done.wait(step)

    def abandon(self) -> bool:
        """Leave the call; False if it had returned meanwhile (the caller takes the result after all)."""
        with self._lock:
            if self._done.is_set():
                return False
            self._abandoned = True
            return True


def bounded(
    fn: Callable[[], T],
    *,
    timeout_s: float,
    stopped: Callable[[], bool] = lambda: False,
    on_late: Callable[[T], object] | None = None,
    name: str = "memtui-bounded",
) -> T:
    """``fn()``, its exception raised here; ``Stopped`` or ``Late`` if it does not return in time."""
    call: _Call[T] = _Call(fn, on_late)
    threading.Thread(target=call.run, name=name, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not call.wait(STEP_S):
        why: Exception | None = None
        if stopped():
            why = Stopped()
        elif time.monotonic() >= deadline:
            why = Late(f"no answer within {timeout_s:.0f} s")
        if why is not None and call.abandon():
            raise why
    if call.error is not None:
        raise call.error
    return call.result  # type: ignore[return-value]
