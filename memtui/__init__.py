"""memtui: run memory-hungry embedding jobs safely, and watch and steer them live.

The integration API for existing scripts::

    from memtui import MemoryMonitor, SmartBatchProcessor, memory_guard

    monitor = MemoryMonitor().start()
    result = SmartBatchProcessor(monitor).process_with_memory_awareness(items, fn)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

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


__all__ = [
    "CircuitBreaker",
    "MemoryBreakerOpen",
    "MemoryConfig",
    "MemoryMonitor",
    "SmartBatchProcessor",
    "__version__",
    "memory_guard",
    "open_cache",
]
