"""memtui: run memory-hungry embedding jobs safely, and watch and steer them live.

The integration API for existing scripts::

    from memtui import MemoryMonitor, SmartBatchProcessor, memory_guard

    monitor = MemoryMonitor().start()
    result = SmartBatchProcessor(monitor).process_with_memory_awareness(items, fn)
"""

from memtui.memory import (
    CircuitBreaker,
    MemoryBreakerOpen,
    MemoryConfig,
    MemoryMonitor,
    SmartBatchProcessor,
    memory_guard,
)

__version__ = "0.1.0"
__all__ = [
    "CircuitBreaker",
    "MemoryBreakerOpen",
    "MemoryConfig",
    "MemoryMonitor",
    "SmartBatchProcessor",
    "__version__",
    "memory_guard",
]
