"""The memory-protection core: probe, monitor, breaker, batching, cleanup, guard.

Knows nothing of embeddings, SQLite or Textual, and imports none of them.
"""

from memtui.memory.batching import Backoff, batch_size_for
from memtui.memory.breaker import BreakerSnapshot, BreakerState, BreakerTransition, CircuitBreaker
from memtui.memory.cleanup import Cleaner, CleanupReport, malloc_trim
from memtui.memory.config import MemoryConfig
from memtui.memory.config_layers import load_config
from memtui.memory.guard import MemoryBreakerOpen, memory_guard
from memtui.memory.monitor import MemoryMonitor, MemorySnapshot
from memtui.memory.probe import MemoryLimit, ProcessProbe, RssBreakdown, discover_limit
from memtui.memory.processor import SmartBatchProcessor
from memtui.memory.units import GB, MB, format_gb, parse_gb

__all__ = [
    "GB",
    "MB",
    "Backoff",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "Cleaner",
    "CleanupReport",
    "MemoryBreakerOpen",
    "MemoryConfig",
    "MemoryLimit",
    "MemoryMonitor",
    "MemorySnapshot",
    "ProcessProbe",
    "RssBreakdown",
    "SmartBatchProcessor",
    "batch_size_for",
    "discover_limit",
    "format_gb",
    "load_config",
    "malloc_trim",
    "memory_guard",
    "parse_gb",
]
