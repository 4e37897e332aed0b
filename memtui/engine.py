"""The Engine contract: what every face (headless, TUI, a remote viewer) may do with an engine.

Two engines satisfy it: ``Runner`` (memtui.runner: the cache/embeddings job)
and ``MonitorEngine`` (memtui.jobs.monitor.engine: watches other processes).
A face hosts an engine in three ways only:

* it runs ``run()`` in one worker thread (the loop runs in whichever thread
  calls it) and gets the report dict back, the same one ``snapshot().report``
  holds afterwards;
* it reads ``snapshot()`` (immutable, any thread, any time) and the events of
  a ``subscribe()`` queue;
* it steers through the thread-safe commands: ``stop``, ``pause``, ``resume``,
  ``request_cleanup``, ``set_thresholds``, and ``emergency_exit`` just before
  the process leaves at once (a second Ctrl-C). An engine may offer more
  commands (the monitor's per-target signals); ``commands`` names them all, so a
  face or a remote viewer knows what it may send (``call``).

Snapshots, events and reports have a versioned JSON form (memtui.wire). This
module imports nothing heavy: a face can type against it without numpy, torch
or Textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from memtui.events import EventQueue
    from memtui.memory.config import MemoryConfig
    from memtui.records import Report

#: The commands every engine takes (``Engine.commands`` lists these and the engine's own).
PROTOCOL_COMMANDS: tuple[str, ...] = ("stop", "pause", "resume", "request_cleanup", "set_thresholds")


@runtime_checkable
class EngineSnapshot(Protocol):
    """What a face may read from any engine's snapshot (each engine's has more: its own fields)."""

    @property
    def report(self) -> Report | None:
        """The run report once ``run()`` has returned, else None."""

    @property
    def finished(self) -> bool:
        """``report is not None``."""

    @property
    def paused(self) -> bool:
        """The operator paused the engine (``pause()``) and it has not resumed."""

    @property
    def stopping(self) -> bool:
        """``stop()`` was called: the engine is ending (or has ended)."""

    @property
    def elapsed_s(self) -> float:
        """Seconds since ``run()`` started (frozen once it returned)."""


@runtime_checkable
class Engine(Protocol):
    """One engine, any face. Every method but ``run`` is safe from any thread."""

    @property
    def kind(self) -> str:
        """Which face parts show this engine: "run" (the embedding job) or "monitor"."""

    @property
    def commands(self) -> tuple[str, ...]:
        """Every command this engine takes: PROTOCOL_COMMANDS and its own (e.g. "pause_target")."""

    def run(self) -> Report:
        """Do the work in the calling thread until done, stopped or aborted; return the report."""
        ...

    def stop(self) -> None:
        """End cleanly: the work in flight is committed (or, for the monitor, what memtui stopped resumed)."""
        ...

    def pause(self) -> None:
        """Hold the work at the next checkpoint until ``resume()``; the snapshot says ``paused``."""
        ...

    def resume(self) -> None: ...

    def request_cleanup(self) -> None:
        """Run memtui's own cleanup (collect, trim, clear caches) soon, in the engine's thread."""
        ...

    def set_thresholds(self, *, warning: str | float | None = None, max: str | float | None = None) -> MemoryConfig:
        """New warning/breaker levels (GB, MB or a percent of the limit); ConfigError applies nothing."""
        ...

    def emergency_exit(self, why: str) -> None:
        """The process is about to exit at once (a second Ctrl-C): settle what must not be left behind."""
        ...

    def snapshot(self) -> EngineSnapshot: ...

    def subscribe(self) -> EventQueue: ...

    def unsubscribe(self, queue: EventQueue) -> None: ...


def call(engine: Engine, command: str, *args: Any, **kwargs: Any) -> Any:
    """Send ``command`` to ``engine`` by name (a key binding, a wire message).

    ValueError if the engine takes no such command: a name from outside never reaches any other method."""
    if command not in engine.commands:
        raise ValueError(
            f"the {engine.kind} engine takes no command {command!r} (it takes: {', '.join(engine.commands)})"
        )
    return getattr(engine, command)(*args, **kwargs)
