"""memtui: run memory-hungry embedding jobs safely, and watch and steer them live.

The integration API for existing scripts::

    from memtui import MemoryMonitor, SmartBatchProcessor, memory_guard

    monitor = MemoryMonitor().start()
    result = SmartBatchProcessor(monitor).process_with_memory_awareness(items, fn)

Or the whole of ``memtui run --job`` (guard, cleanups, resumable results file, a face)::

    import memtui

    memtui.on_cleanup(drop_my_model)                 # what memtui may free when memory is high
    report = memtui.run_job(classify, items, output="results.sqlite")
    for row in memtui.read_results("results.sqlite"):  # {"key": ..., "result": ...} in input order
        ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from memtui.memory import (
    CircuitBreaker,
    MemoryBreakerOpen,
    MemoryConfig,
    MemoryMonitor,
    SmartBatchProcessor,
    memory_guard,
)

if TYPE_CHECKING:
    from memtui.embed.reader import CacheReader

__version__ = "0.1.0"


def open_cache(path: str | os.PathLike[str]) -> CacheReader:
    """A cache's rows and vectors, read-only (safe while a run writes it): see docs/vectors.md."""
    from memtui.embed.reader import open_cache as _open  # noqa: PLC0415 - numpy and SQLite load only when used

    return _open(path)


def run_job(fn: Any, items: Any, *, output: str | os.PathLike[str], **options: Any) -> dict[str, Any]:
    """Run a batch function (list of item dicts -> one JSON result per item) under the guard: docs/jobs.md."""
    from memtui.faces.run_job import run_job as _run_job  # noqa: PLC0415

    return _run_job(fn, items, output=output, **options)


def on_cleanup(fn: Any = None, *, unload: bool = False) -> Any:
    """Register what memtui may call to free memory in a job (a decorator too): docs/jobs.md."""
    from memtui.jobs.user.hooks import on_cleanup as _on_cleanup  # noqa: PLC0415

    return _on_cleanup(fn, unload=unload)


def read_results(path: str | os.PathLike[str], *, failures: bool = False) -> Iterator[dict[str, Any]]:
    """A job's results file as ``{"key", "result"}`` dicts in input order (``failures``: ``{"key", "error"}``)."""
    from memtui.jobs.user.results import read_results as _read  # noqa: PLC0415

    return _read(path, failures=failures)


__all__ = [
    "CircuitBreaker",
    "MemoryBreakerOpen",
    "MemoryConfig",
    "MemoryMonitor",
    "SmartBatchProcessor",
    "__version__",
    "memory_guard",
    "on_cleanup",
    "open_cache",
    "read_results",
    "run_job",
]
