"""A worker's row: the plain dict a worker sends, the typed ``WorkerRow`` the client keeps, the report entry.

A worker's row travels in Dask's own heartbeat (a custom ``Worker.metrics`` entry,
``plugin.METRIC``), as Dask's dashboard gets each worker's memory: no extra message
per worker, at the heartbeat's pace (0.5 s up to 10 workers, slower as the cluster
grows). It is a plain dict (the heartbeat is msgpack); the client turns it into a
``records.WorkerRow`` for the snapshot. Each dict carries the worker's ``incarnation``
(when its guard started) and a ``seq``, so a heartbeat read after a fresher row (one
returned with a task's result, or by a command) does not turn the row back.

No Dask here: an attached viewer and the TUI read rows without the extra installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memtui.memory.breaker import BreakerState
from memtui.memory.units import GB
from memtui.records import WorkerRow

#: Seconds of RSS history a row carries (one peak per second).
HISTORY_S = 20


def recent_peaks(history: Sequence[tuple[float, int]], seconds: int = HISTORY_S) -> list[int]:
    """The RSS peak of each of the last ``seconds`` seconds of (time, rss) samples, oldest first."""
    if not history:
        return []
    end = history[-1][0]
    peaks: dict[int, int] = {}
    for t, rss in reversed(history):
        age = int(end - t)
        if age >= seconds:
            break
        peaks[age] = max(peaks.get(age, 0), rss)
    return [peaks[age] for age in sorted(peaks, reverse=True)]


def newer(row: dict[str, Any], than: dict[str, Any] | None) -> bool:
    """Whether ``row`` is a later reading of the worker than ``than`` (a restarted worker's rows are newer)."""
    if than is None:
        return True
    return (row.get("incarnation", 0.0), row.get("seq", 0)) >= (than.get("incarnation", 0.0), than.get("seq", 0))


def worker_row(data: dict[str, Any], *, lost: bool = False) -> WorkerRow:
    """The typed row of a worker's dict."""
    return WorkerRow(
        address=data["address"],
        name=str(data.get("name") or data["address"]),
        rss_bytes=int(data["rss_bytes"]),
        peak_bytes=int(data["peak_bytes"]),
        history=tuple(int(v) for v in data.get("history", ())),
        warning_bytes=int(data["warning_bytes"]),
        max_bytes=int(data["max_bytes"]),
        breaker=BreakerState(data["breaker"]),
        breaker_trips=int(data["breaker_trips"]),
        warnings=int(data["warnings"]),
        cleanups=int(data["cleanups"]),
        batch_size=int(data["batch_size"]),
        current_domain=data.get("current_domain"),
        activity=str(data["activity"]),
        items_done=int(data["items_done"]),
        domains_done=int(data["domains_done"]),
        sub_batches=int(data["sub_batches"]),
        model_loaded=bool(data["model_loaded"]),
        model_loads=int(data["model_loads"]),
        paused=bool(data["paused"]),
        orders=int(data["orders"]),
        lost=lost,
    )


def report_entry(row: WorkerRow) -> dict[str, Any]:
    """A worker in the run report's ``workers`` list (the JSON users read)."""
    return {
        "address": row.address,
        "name": row.name,
        "memory_gb": round(row.rss_bytes / GB, 3),
        "peak_memory_gb": round(row.peak_bytes / GB, 3),
        "breaker": row.breaker.value,
        "breaker_trips": row.breaker_trips,
        "memory_warnings": row.warnings,
        "cleanups": row.cleanups,
        "items_done": row.items_done,
        "domains_done": row.domains_done,
        "sub_batches": row.sub_batches,
        "model_loads": row.model_loads,
        "warning_memory_gb": round(row.warning_bytes / GB, 3),
        "max_memory_gb": round(row.max_bytes / GB, 3),
        "lost": row.lost,
    }
