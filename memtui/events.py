"""What the engine tells its faces: immutable events and a per-subscriber queue.

Each event renders itself as one log line in the original guide's style, so the
headless log and the TUI's GC log say the same thing in the same words.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

from memtui.memory.breaker import BreakerState
from memtui.memory.cleanup import CleanupReport
from memtui.memory.units import format_gb
from memtui.records import RunReport


@dataclass(frozen=True)
class Event:
    at: float = field(default_factory=time.time, kw_only=True)
    level: str = field(default="info", kw_only=True)

    @property
    def message(self) -> str:  # pragma: no cover - every subclass overrides
        return self.__class__.__name__


@dataclass(frozen=True)
class PhaseChanged(Event):
    phase: str
    detail: str = ""

    @property
    def message(self) -> str:
        return f"{self.phase}: {self.detail}" if self.detail else self.phase


@dataclass(frozen=True)
class BatchStarted(Event):
    number: int
    units: tuple[str, ...]
    items: int
    to_embed: int
    rss: int
    #: a user's job (memtui.jobs.user): its units are calls of items, computed rather than embedded
    job: bool = False

    @property
    def message(self) -> str:
        if self.job:
            return (
                f"🔍 Starting operation (Memory: {format_gb(self.rss)}) batch {self.number}: "
                f"{len(self.units)} call(s), {self.items} items, {self.to_embed} to compute"
            )
        return (
            f"🔍 Starting operation (Memory: {format_gb(self.rss)}) batch {self.number}: "
            f"{len(self.units)} domain(s), {self.items} responses, {self.to_embed} to embed"
        )


@dataclass(frozen=True)
class BatchDone(Event):
    number: int
    units: tuple[str, ...]
    items: int
    embedded: int
    duration_s: float
    rss: int
    complete: bool = True
    job: bool = False  # as BatchStarted's

    @property
    def message(self) -> str:
        what = "committed" if self.complete else "partly committed (stopped mid-batch)"
        if self.job:
            return (
                f"📦 Batch {self.number} {what}: {len(self.units)} call(s), {self.items} items, "
                f"{self.embedded} computed in {self.duration_s:.1f}s (Memory: {format_gb(self.rss)})"
            )
        return (
            f"📦 Batch {self.number} {what}: {len(self.units)} domain(s), {self.items} responses, "
            f"{self.embedded} embedded in {self.duration_s:.1f}s (Memory: {format_gb(self.rss)})"
        )


@dataclass(frozen=True)
class BreakerChanged(Event):
    old: BreakerState
    new: BreakerState
    rss: int
    reason: str

    @property
    def message(self) -> str:
        icon = {"open": "🚨", "half_open": "🔄", "warning": "⚠️", "closed": "✅"}[self.new.value]
        return f"{icon} Circuit breaker {self.old.label} -> {self.new.label} at {format_gb(self.rss)}: {self.reason}"


@dataclass(frozen=True)
class MemoryWarning(Event):
    rss: int

    @property
    def message(self) -> str:
        return f"⚠️ Memory warning: {format_gb(self.rss)}"


@dataclass(frozen=True)
class CleanupRan(Event):
    report: CleanupReport

    @property
    def message(self) -> str:
        why = f" ({self.report.reason})" if self.report.reason else ""
        return f"🧹 Cleanup{why}: {self.report.describe()}"


@dataclass(frozen=True)
class WorkerDone(Event):
    """A cluster worker's domain came back (memtui.cluster): a batch line naming the worker."""

    worker: str
    domain: str
    embedded: int
    duration_s: float
    rss: int
    peak: int
    breaker: str

    @property
    def message(self) -> str:
        return (
            f"🖥️ {self.worker}: {self.domain} · {self.embedded} embedded in {self.duration_s:.1f}s · "
            f"worker mem {format_gb(self.rss)} peak {format_gb(self.peak)} · breaker {self.breaker}"
        )


@dataclass(frozen=True)
class Notice(Event):
    text: str

    @property
    def message(self) -> str:
        return self.text


@dataclass(frozen=True)
class RunFinished(Event):
    report: RunReport

    @property
    def message(self) -> str:
        r = self.report
        return (
            f"🏁 Run {r.status}: {r.committed} {'items' if r.mode == 'job' else 'responses'} in {r.duration_s:.1f}s "
            f"({r.items_per_s:.1f}/s), peak {r.peak_memory_gb:.2f}GB"
        )


class EventQueue:
    """One subscriber's bounded queue: a face that stops draining loses the oldest events, never blocks the job."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._items: collections.deque[Event] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._ready = threading.Event()

    def put(self, event: Event) -> None:
        with self._lock:
            self._items.append(event)
        self._ready.set()

    def drain(self) -> list[Event]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._ready.clear()
        return items

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)


class EventBus:
    """Fan-out to subscribers; a late subscriber (a face started after the input scan) gets the recent past."""

    def __init__(self, replay: int = 200) -> None:
        self._queues: list[EventQueue] = []
        self._recent: collections.deque[Event] = collections.deque(maxlen=replay)
        self._lock = threading.Lock()

    def subscribe(self, maxlen: int = 10_000, *, replay: bool = True) -> EventQueue:
        queue = EventQueue(maxlen)
        with self._lock:
            if replay:
                for event in self._recent:
                    queue.put(event)
            self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: EventQueue) -> None:
        with self._lock:
            if queue in self._queues:
                self._queues.remove(queue)

    def publish(self, event: Event) -> None:
        with self._lock:
            self._recent.append(event)
            queues = list(self._queues)
        for queue in queues:
            queue.put(event)
