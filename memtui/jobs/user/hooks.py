"""What a user's job lets memtui free when memory is high: ``memtui.on_cleanup(fn)``.

The built-in job's escalation is: caches cleared at a warning and at every cleanup, the model unloaded
when an open breaker outlasts its cleanups. A hook registered plainly runs at every cleanup; one
registered with ``unload=True`` runs only at the unload step (drop a model the function reloads lazily).
A hook that raises is logged and skipped: a cleanup never ends the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("memtui")

F = TypeVar("F", bound=Callable[[], object])

_lock = threading.Lock()
_hooks: list[tuple[Callable[[], object], bool]] = []


def on_cleanup(fn: F | None = None, *, unload: bool = False) -> F | Callable[[F], F]:
    """Register ``fn`` (no arguments) for memtui to call when memory is high; usable as a decorator."""

    def register(hook: F) -> F:
        if not callable(hook):
            raise TypeError(f"memtui.on_cleanup takes a callable, not {type(hook).__name__}")
        with _lock:
            if all(h is not hook for h, _ in _hooks):
                _hooks.append((hook, unload))
        return hook

    return register if fn is None else register(fn)


def clear_hooks() -> None:
    """Forget every hook (a finished ``run_job``; tests)."""
    with _lock:
        _hooks.clear()


def run_hooks(*, unloading: bool) -> list[str]:
    """Call the hooks of this step (every plain one; the unload ones too when ``unloading``); their names."""
    with _lock:
        hooks = [h for h, only_unload in _hooks if unloading or not only_unload]
    names: list[str] = []
    for hook in hooks:
        name = getattr(hook, "__qualname__", None) or repr(hook)
        try:
            hook()
        except (Exception, SystemExit) as exc:  # a user's hook (sys.exit too): logged, never the end of the run
            log.warning("cleanup hook %s failed: %s: %s", name, exc.__class__.__name__, exc)
            continue
        names.append(name)
    return names
