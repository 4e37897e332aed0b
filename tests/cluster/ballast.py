"""A task that allocates a block of memory on chosen domains, past its worker's breaker level, and
lets memtui's cleanup free it: the breaker trips for real and memory falls (the breaker test)."""

from __future__ import annotations

import numpy as np

from memtui.cluster.plugin import _guard, embed_domain
from memtui.memory.units import MB

BALLAST_DOMAINS = ("site001.example", "site002.example")
#: How far past the breaker level the block takes the worker.
OVER = 256 * MB


def ballast_embed(domain: str, texts: list[str]):
    if domain in BALLAST_DOMAINS:
        guard = _guard()
        size = max(OVER, guard.monitor.config.max_bytes - guard.monitor.sample() + OVER)
        held = [np.ones(size // 8)]  # written to, so its pages count in RSS
        guard.monitor.cleaner.register("test ballast", held.clear)  # the breaker's first cleanup frees it
    return embed_domain(domain, texts)
