"""The cache job: every response of the input, domain by domain, into the SQLite cache.

Resumable: a domain with a summary row is complete and skipped; a vector
already in the cache (same model, same backend, same text) is never embedded again. The
embeddings job is the same work limited to the first N texts, without the
per-domain summaries (its last domain may be cut short).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from memtui.embed.lock import CacheLock
from memtui.embed.store import TORCH_BACKEND, CacheStore, DomainSummary, key_for
from memtui.errors import InputError, RuntimeFailure
from memtui.jobs.base import CommitResult, Executor, JobTotals, Work
from memtui.jobs.input import InputStats, read_domains
from memtui.jobs.scan_progress import ScanProgress
from memtui.jobs.source import InputSource
from memtui.memory.units import format_bytes
from memtui.records import DomainGroup, Response

#: Disk a response's row and vector take in the cache, at most (a 384-dim float32 vector is 1.5 KB).
BYTES_PER_RESPONSE = 4096
#: Free space kept in hand beyond the estimate (SQLite's WAL, the trace, the report).
DISK_MARGIN = 64 << 20


class CacheJob:
    def __init__(
        self,
        input_path: str | Path,
        cache_path: str | Path,
        executor: Executor,
        *,
        model_id: str,
        mode: str = "cache",
        limit_domains: int | None = None,
        limit_texts: int | None = None,
        strict: bool = False,
        backend: str | None = None,
    ) -> None:
        self.mode = mode
        # The backend is part of each vector's identity in the cache (store.key_for); default: the executor's.
        self.backend = (
            backend or getattr(executor, "vector_backend", None) or getattr(executor, "backend", None) or TORCH_BACKEND
        )
        self.input_path = str(input_path)
        self.cache_path = str(cache_path)
        self.executor = executor
        self.model_id = model_id
        self.limit_domains = limit_domains
        self.limit_texts = limit_texts
        self.strict = strict
        self.summaries = limit_texts is None
        self.stats = InputStats()
        self._store: CacheStore | None = None
        self._source: InputSource | None = None
        self._done: set[str] = set()

    @property
    def store(self) -> CacheStore:
        if self._store is None:
            raise RuntimeError("CacheJob.open() first")
        return self._store

    def open(self) -> JobTotals:
        """Lock the cache, scan the input (a bad input fails before any cache file exists), open the cache.

        The lock comes first when the cache's folder exists, so a second run on
        the same cache refuses at once instead of after a long scan.
        """
        cache = Path(self.cache_path)
        lock = CacheLock.acquire(cache) if cache.parent.is_dir() else None
        try:
            self._source = InputSource.open(self.input_path)
            sizes = self._scan()
            self._store = CacheStore.open(cache, self.model_id, lock=lock, backend=self.backend)
        except BaseException:
            if self._store is None and lock is not None:
                lock.release()
            self.close()
            raise
        self._done = self._store.done_domains() & sizes.keys() if self.summaries else set()
        totals = JobTotals(
            units=len(sizes),
            items=sum(sizes.values()),
            units_done=len(self._done),
            items_done=sum(sizes[d] for d in self._done),
            bad_lines=self.stats.bad_lines,
            bad_line_details=tuple(self.stats.bad_details),
        )
        self._check_disk(totals.items - totals.items_done)
        return totals

    def _scan(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        assert self._source is not None
        progress = ScanProgress(self._source.name)  # a long scan says it goes on (log lines)
        for group in self._scoped(self._read(self.stats, progress)):
            if group.domain in sizes and self.summaries:
                # A split domain would get a summary per piece and be taken as done after the first.
                raise InputError(
                    f"{self.input_path}:{group.responses[0].line}: domain {group.domain!r} appears again after "
                    "other domains; keep each domain's lines together (sort the file by domain)"
                )
            sizes[group.domain] = sizes.get(group.domain, 0) + len(group.responses)
        if not sizes:
            first = self.stats.bad_details[0] if self.stats.bad_details else None
            bad = (
                f" ({self.stats.bad_lines} bad line(s), e.g. {self.input_path}:{first.line}: {first.reason})"
                if first
                else ""
            )
            raise InputError(
                f"{self.input_path} holds no valid responses{bad}; "
                "check the file is JSON Lines with domain, model, prompt_type, response"
            )
        return sizes

    def _read(self, stats: InputStats, progress: Callable[[InputStats], None] | None = None) -> Iterator[DomainGroup]:
        assert self._source is not None
        return read_domains(
            self._source.path, strict=self.strict, stats=stats, name=self._source.name, progress=progress
        )

    def _check_disk(self, items_left: int) -> None:
        """Refuse to start (before the model loads) when the cache's disk cannot hold the work left."""
        if items_left <= 0:
            return
        need = items_left * BYTES_PER_RESPONSE + DISK_MARGIN
        try:
            fs = os.statvfs(Path(self.cache_path).parent)
        except OSError:
            return
        free = fs.f_bavail * fs.f_frsize
        if free < need:
            raise RuntimeFailure(
                f"not enough free disk for cache {self.cache_path}: {format_bytes(free)} free, about "
                f"{format_bytes(need)} needed for {items_left} responses; free space or pass --cache on another disk"
            )

    def units(self) -> Iterator[DomainGroup]:
        # A second streaming pass: bad lines were counted by open(), so this one keeps its own stats.
        for group in self._scoped(self._read(InputStats())):
            if group.domain not in self._done:
                yield group

    def _scoped(self, groups: Iterator[DomainGroup]) -> Iterator[DomainGroup]:
        """Apply --limit (first N domains) and --texts (first N responses)."""
        texts_left = self.limit_texts
        for index, group in enumerate(groups):
            if self.limit_domains is not None and index >= self.limit_domains:
                return
            if texts_left is not None:
                if texts_left <= 0:
                    return
                if len(group.responses) > texts_left:
                    group = DomainGroup(group.domain, group.responses[:texts_left])
                texts_left -= len(group.responses)
            yield group

    def prepare(self, units: Sequence[DomainGroup]) -> Work:
        keys = [key_for(self.model_id, r.text, self.backend) for unit in units for r in unit.responses]
        texts = {k: r.text for k, r in zip(keys, (r for unit in units for r in unit.responses))}
        missing = self.store.missing(set(keys))
        to_embed = [(k, texts[k]) for k in dict.fromkeys(keys) if k in missing]
        return Work(units=tuple(units), keys=keys, to_embed=to_embed)

    def commit(self, work: Work) -> CommitResult:
        """One transaction: the new vectors, the responses that have a vector, finished domains' summaries."""
        pending = {k for k, _ in work.to_embed if k not in work.vectors}
        responses: list[Response] = []
        completed: list[str] = []
        summaries: list[DomainSummary] = []
        items_completed = 0
        stored: list[tuple[str, int, int]] = []
        offset = 0
        for unit in work.units:
            unit_keys = work.keys[offset : offset + len(unit.responses)]
            offset += len(unit.responses)
            have = [(r, k) for r, k in zip(unit.responses, unit_keys) if k not in pending]
            responses.extend(r for r, _ in have)
            stored.append((unit.domain, len(have), len(unit.responses)))
            if len(have) == len(unit.responses):
                completed.append(unit.domain)
                items_completed += len(unit.responses)
                if self.summaries:
                    summaries.append(self.store.summarize(unit.domain, unit.responses, work.vectors))
        self.store.commit_batch(work.vectors, responses, summaries)
        return CommitResult(
            completed=tuple(completed),
            items_completed=items_completed,
            vectors_written=len(work.vectors),
            stored=tuple(stored),
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._source is not None:
            self._source.close()
            self._source = None
