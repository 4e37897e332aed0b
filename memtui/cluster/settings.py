"""Dask's memory manager as a backstop behind memtui's breaker, not a rival.

Each worker guards itself with memtui's core (``plugin.WorkerGuard``): its breaker shrinks the
sub-batches at the warning level, and past the breaker level it cleans up, waits and unloads the
model. Dask has its own per-worker memory manager, with four fractions of the worker's
``memory_limit``:

========  =====  ===========================================================================
setting   here   why
========  =====  ===========================================================================
target    False  spilling managed data to disk is for task *results* kept on the worker; ours
                 are sent to the client at once, and spilling would only add disk traffic
spill     False  the same, measured on process memory
pause     0.90   Dask stops starting tasks; at 0.9 x (1.25 x breaker) = 1.125 x breaker it
                 comes only after memtui's breaker has opened and failed to bring memory back
terminate 0.95   the nanny kills the worker (1.19 x breaker): the last resort before the
                 kernel's OOM killer; the task then runs again elsewhere (see engine.py)
========  =====  ===========================================================================

``memory_limit`` itself is set to ``MEMORY_LIMIT_FACTOR`` (1.25) x memtui's per-worker breaker
level, so every Dask threshold sits above it: memtui acts first, Dask only if memtui could not.

For a cluster memtui starts (``--workers N``) these are applied for you. For workers you start
yourself (``dask worker``), set them in the workers' environment::

    DASK_DISTRIBUTED__WORKER__MEMORY__TARGET=False
    DASK_DISTRIBUTED__WORKER__MEMORY__SPILL=False
    DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE=0.9
    DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE=0.95
    dask worker tcp://SCHEDULER:8786 --nthreads 1 --memory-limit 1.9GB   # 1.25 x a 1.5 GB breaker

A local cluster's scheduler runs with ``worker-saturation`` 1.0 (a worker holds only the task it
runs, so a death blames only that domain). The scheduler's ``allowed-failures`` is set to 1 by the
client at run time (a domain whose task
was on a worker that died twice is quarantined, not retried for ever).
"""

from __future__ import annotations

from typing import Any

from memtui.memory.config import MemoryConfig

MEMORY_LIMIT_FACTOR = 1.25
PAUSE_FRACTION = 0.90
TERMINATE_FRACTION = 0.95
#: A task on a worker that died is retried once elsewhere; the second death quarantines its domain.
ALLOWED_FAILURES = 1


def dask_config() -> dict[str, Any]:
    """The dask.config settings memtui applies to a cluster it starts."""
    return {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": PAUSE_FRACTION,
        "distributed.worker.memory.terminate": TERMINATE_FRACTION,
        "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
        # one task per worker thread, none queued on the worker: a worker that dies is blamed only for
        # the domain it was running (Dask counts a death against every task assigned to the worker)
        "distributed.scheduler.worker-saturation": 1.0,
        # no HTTP routes (health, metrics, task info) on the scheduler and workers memtui starts: nothing
        # of the run is served in clear on the machine (the cluster's own comms are TLS: engine.py)
        "distributed.scheduler.http.routes": [],
        "distributed.worker.http.routes": [],
    }


def memory_limit_bytes(config: MemoryConfig) -> int:
    """Dask's per-worker memory_limit: above memtui's breaker, so Dask's pause/terminate come after it."""
    return int(config.max_bytes * MEMORY_LIMIT_FACTOR)
