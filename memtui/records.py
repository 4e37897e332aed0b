"""The records memtui passes between its parts: responses, a domain's group of them, the run report.

Their own module, so the cache (memtui.embed) needs nothing of the input reader
(memtui.jobs.input) to know what it stores, and every face reads one typed report.
"""

from __future__ import annotations

from collections.abc import Iterator, KeysView
from dataclasses import dataclass, fields
from typing import Any

from memtui.memory.breaker import BreakerState


def backend_label(backend: str | None) -> str:
    """The backend as every face names it: its family (onnx-int8, not its recipe and ISA; openvino with its
    precision, bf16 or fp32, which it picked from the CPU); "" for the exact default (torch) or an unknown
    one, which say nothing."""
    if not backend or backend == "torch":
        return ""
    name, _, rest = backend.partition("/")
    return f"{name} {rest}" if name == "openvino" and rest else name


@dataclass(frozen=True, slots=True)
class Response:
    id: str
    domain: str
    model: str
    prompt_type: str
    text: str
    line: int


@dataclass(frozen=True)
class DomainGroup:
    domain: str
    responses: tuple[Response, ...]

    @property
    def name(self) -> str:
        """What the engine calls a unit of work (the runner knows units only by name)."""
        return self.domain


@dataclass(frozen=True, eq=False)
class DomainPiece:
    """At most memtui.jobs.pieces.PIECE_RESPONSES consecutive responses of one domain: the unit of work,
    so no allocation grows with a domain's size. ``last``: no more of the domain follows."""

    domain: str
    part: int
    responses: tuple[Response, ...]
    last: bool

    @property
    def name(self) -> str:
        return self.domain


@dataclass(frozen=True)
class WorkerRow:
    """One cluster worker as its own memory core sees it (memtui.cluster): a face's row, a report entry."""

    address: str
    name: str
    rss_bytes: int
    peak_bytes: int
    #: RSS peak of each of the last seconds, oldest first (a sparkline; a spike survives the downsampling).
    history: tuple[int, ...]
    warning_bytes: int
    max_bytes: int
    breaker: BreakerState
    breaker_trips: int
    warnings: int
    cleanups: int
    #: Texts in the worker's sub-batch in flight (or next); the breaker shrinks it.
    batch_size: int
    current_domain: str | None
    #: What the worker does now: idle, loading model, embedding, paused, waiting for memory.
    activity: str
    items_done: int
    domains_done: int
    sub_batches: int
    model_loaded: bool
    model_loads: int
    #: The operator's pause holds this worker (it starts no sub-batch).
    paused: bool
    #: The version of the client's orders (pause, thresholds) this worker follows.
    orders: int
    #: The worker left the cluster during the run (its last row is kept).
    lost: bool = False


class JsonView:
    """``report["exit_code"]`` and ``report.get(key)``: the JSON form read like a dict.

    Kept only for the tests that still index a report (about 40 files); memtui's own code reads the
    typed records (``RunReport``, ``MonitorReport``) by attribute, and new code must too.
    """

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def keys(self) -> KeysView[str]:
        return self.to_dict().keys()


@dataclass(frozen=True)
class RunReport(JsonView):
    """What a cache or embeddings run did, typed; its JSON form (``to_dict()``) keeps the keys users know."""

    status: str
    exit_code: int
    mode: str
    memory_usage_gb: float
    peak_memory_gb: float
    memory_warnings: int
    breaker_trips: int
    cleanups: int
    batches: int
    items: int
    items_embedded: int
    items_skipped: int
    items_total: int
    items_per_s: float
    duration_s: float
    domains_done: int
    domains_total: int
    unprocessed_domains: int
    unprocessed: tuple[str, ...]
    bad_lines: int
    bad_line_details: tuple[dict[str, Any], ...]
    limit_gb: float | None
    limit_source: str | None
    warning_memory_gb: float
    max_memory_gb: float
    input: str
    cache: str
    model: str
    thresholds: dict[str, Any] | None = None
    # present in the JSON only when known
    rss_anon_gb: float | None = None
    rss_file_gb: float | None = None
    error: str | None = None
    reason: str | None = None
    memory_floor_gb: float | None = None
    previous_abnormal_end: str | None = None
    # a cluster run only (memtui.cluster): each worker's stats, workers that died, domains quarantined
    cluster: str | None = None
    #: this run's responses whose vectors are in the cache at its end (unfinished domains' parts included)
    responses_committed: int | None = None
    workers: tuple[dict[str, Any], ...] | None = None
    workers_lost: int | None = None
    quarantined: tuple[str, ...] | None = None
    # the memory that gets a job killed (memtui.memory.headroom): the least headroom seen, what bound it,
    # one batch's largest measured cost, and how often the headroom fell below it
    lowest_headroom_gb: float | None = None
    lowest_headroom_binds: str | None = None
    batch_cost_gb: float | None = None
    headroom_warnings: int | None = None
    #: what made the vectors, as the cache tags them (``memtui.embed.artifacts.vector_backend``):
    #: torch, onnx, or onnx-int8 with its recipe and ISA (onnx-int8/r3/avx512_vnni)
    backend: str | None = None
    #: a user's job only (memtui.jobs.user): items the function failed on alone, and the first 100 of them
    items_failed: int | None = None
    failed_items: tuple[dict[str, Any], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _WHEN_KNOWN and value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def committed(self) -> int:
        """Responses with a vector in the cache: the one count every face and line says."""
        return self.items if self.responses_committed is None else self.responses_committed

    def summary_lines(self) -> list[str]:
        """The run in a few lines, as the headless face prints them and the TUI's report panel shows them."""
        r = self
        committed = r.committed
        if r.mode == "job":
            return r._job_summary_lines()
        lines = [
            f"Run {r.status} ({', '.join(filter(None, (r.mode, backend_label(r.backend))))}): "
            f"{committed} responses committed to the cache in {r.duration_s:.1f}s "
            f"({r.items_per_s:.1f}/s), {r.items_skipped} already cached",
            f"Domains {r.domains_done}/{r.domains_total} · batches {r.batches} · memory now "
            f"{r.memory_usage_gb:.2f}GB, peak {r.peak_memory_gb:.2f}GB · warnings {r.memory_warnings} · "
            f"breaker trips {r.breaker_trips} · cleanups {r.cleanups}",
        ]
        if r.limit_gb:
            lines.append(
                f"Memory limit {r.limit_gb:.2f}GB from {r.limit_source} · thresholds warning "
                f"{r.warning_memory_gb:.2f}GB, breaker {r.max_memory_gb:.2f}GB"
            )
        if r.lowest_headroom_gb is not None:
            cost = f" · one batch cost up to {r.batch_cost_gb:.2f}GB" if r.batch_cost_gb is not None else ""
            below = f" · below one batch {r.headroom_warnings} time(s)" if r.headroom_warnings else ""
            lines.append(f"Lowest headroom {r.lowest_headroom_gb:.2f}GB to {r.lowest_headroom_binds}{cost}{below}")
        if r.bad_lines:
            lines.append(f"{r.bad_lines} bad input line(s) skipped")
        if r.unprocessed_domains:
            names = ", ".join(r.unprocessed[:5])
            more = f" and {r.unprocessed_domains - 5} more" if r.unprocessed_domains > 5 else ""
            how = "rerun with the levels above to resume" if r.memory_floor_gb else "rerun to resume"
            lines.append(f"Not processed: {r.unprocessed_domains} domain(s): {names}{more} ({how})")
        if r.workers is not None:
            lines.append(f"Cluster {r.cluster}: {len(r.workers)} worker(s), {r.workers_lost or 0} lost")
            for w in r.workers:
                lines.append(
                    f"  {w.get('address')}: {w.get('items_done', 0)} responses, peak {w.get('peak_memory_gb', 0):.2f}GB"
                    f" · breaker trips {w.get('breaker_trips', 0)} · cleanups {w.get('cleanups', 0)}"
                    + (" · lost" if w.get("lost") else "")
                )
        if r.quarantined:
            lines.append(f"Quarantined (killed workers twice, not retried): {', '.join(r.quarantined)}")
        if r.reason and r.memory_floor_gb is not None:
            # The floor and the flags to change come second, where a short screen still shows them.
            lines.insert(1, f"Why: {r.reason}")
        elif r.reason:
            lines.append(f"Why: {r.reason}")
        if r.error:
            lines.append(f"Error: {r.error}")
        lines.append(f"Cache: {r.cache}")
        return lines

    def _job_summary_lines(self) -> list[str]:
        """A user's job (memtui.jobs.user): items and calls, not responses and domains."""
        r = self
        lines = [
            f"Run {r.status} (job {r.model}): {r.committed} items committed to the results file in "
            f"{r.duration_s:.1f}s ({r.items_per_s:.1f}/s), {r.items_skipped} already done",
            f"{r.domains_done}/{r.domains_total} pieces of items done, {r.items} items worked in this run · "
            f"batches {r.batches} · memory now "
            f"{r.memory_usage_gb:.2f}GB, peak {r.peak_memory_gb:.2f}GB · warnings {r.memory_warnings} · "
            f"breaker trips {r.breaker_trips} · cleanups {r.cleanups}",
        ]
        if r.items_failed:
            first = r.failed_items[0] if r.failed_items else {}
            lines.append(
                f"Failed: {r.items_failed} item(s), e.g. line {first.get('line')} (key {first.get('key')}): "
                f"{first.get('error')}; fix and rerun (only they are computed again)"
            )
        if r.bad_lines:
            lines.append(f"{r.bad_lines} bad input line(s) skipped")
        if r.unprocessed_domains:
            lines.append(f"Not processed: {r.unprocessed_domains} call(s) of items (rerun to resume)")
        if r.reason:
            lines.append(f"Why: {r.reason}")
        if r.error:
            lines.append(f"Error: {r.error}")
        lines.append(f"Results: {r.cache}")
        return lines


@dataclass(frozen=True)
class MonitorReport(JsonView):
    """What a watch (``memtui watch``, the monitor engine) did, typed; ``to_dict()`` is its JSON form.

    ``targets`` are each watched process's entry as the JSON report holds it
    (``TargetSnapshot.as_report``), those that left a live top N first.
    """

    status: str
    exit_code: int
    end_reason: str
    duration_s: float
    interval_s: float
    rounds: int
    selection: str
    children: bool
    on_breaker: str
    peak_memory_gb: float
    peak_pid: int | None
    memory_warnings: int
    breaker_trips: int
    actions: int
    warning_memory_gb: float
    max_memory_gb: float
    reset_memory_gb: float
    limit_gb: float | None
    limit_source: str | None
    targets: tuple[dict[str, Any], ...]
    mode: str = "monitor"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "exit_code": self.exit_code, "mode": self.mode}
        for f in fields(self):
            value = getattr(self, f.name)
            out.setdefault(f.name, list(value) if isinstance(value, tuple) else value)
        return out

    def summary_lines(self) -> list[str]:
        """The watch in a few lines: the headless face prints them, ``memtui attach`` too."""
        lines = [
            f"Monitor {self.status} ({self.end_reason}) after {self.duration_s:.1f}s: {self.selection}, "
            f"every {self.interval_s:g}s, on breaker: {self.on_breaker}"
        ]
        for t in self.targets:
            acts = ", ".join(f"{a['action']}{'' if a['ok'] else ' (failed)'}" for a in t["actions"]) or "none"
            lines.append(
                f"  pid {t['pid']} {t['name']}: {t['state']} · now {t['memory_usage_gb']:.2f}GB · peak "
                f"{t['peak_memory_gb']:.2f}GB · warnings {t['memory_warnings']} · trips {t['breaker_trips']} "
                f"· actions: {acts}"
            )
        limit = f"memory limit {self.limit_gb:.2f}GB from {self.limit_source} · " if self.limit_gb else ""
        lines.append(
            f"{limit}thresholds: warning {self.warning_memory_gb:.2f}GB, breaker {self.max_memory_gb:.2f}GB, "
            f"reset below {self.reset_memory_gb:.2f}GB"
        )
        return lines


#: Any engine's report, typed.
Report = RunReport | MonitorReport


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON form of any engine's report (what --report writes and the wire carries)."""
    return report.to_dict()


_WHEN_KNOWN = frozenset(
    {
        "rss_anon_gb",
        "rss_file_gb",
        "error",
        "reason",
        "memory_floor_gb",
        "previous_abnormal_end",
        "cluster",
        "workers",
        "workers_lost",
        "quarantined",
        "responses_committed",
        "lowest_headroom_gb",
        "lowest_headroom_binds",
        "batch_cost_gb",
        "headroom_warnings",
        "backend",
        "items_failed",
        "failed_items",
    }
)
