"""A cache run of the real CacheJob and Runner with the fake embedder, as a process of its own.

The hostile tests start it inside a memory cgroup, kill it with SIGKILL mid-domain,
and read what it prints: one JSON line with the run's report, the texts it
embedded, and its RSS before the run and its peak (VmHWM).
Usage: python -m tests.hostile.domain_run INPUT CACHE DELAY_S
"""

from __future__ import annotations

import json
import sys


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def main() -> None:
    from memtui.jobs.cache import CacheJob
    from memtui.memory.config import MemoryConfig
    from memtui.memory.monitor import MemoryMonitor
    from memtui.runner import Runner
    from tests.support.executors import FakeExecutor

    source, cache, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    executor = FakeExecutor(sub_batch=64, delay_s=delay)
    job = CacheJob(source, cache, executor, model_id="fake-model")
    base = _status_kib("VmRSS")
    report = Runner(job, MemoryMonitor(MemoryConfig())).run()  # the default breaker (1.5 GB)
    out = {
        "exit_code": report.exit_code,
        "status": report.status,
        "error": report.error,
        "embedded": executor.texts_encoded,
        "base_kib": base,
        "peak_kib": _status_kib("VmHWM"),
        "breaker_trips": report.breaker_trips,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
