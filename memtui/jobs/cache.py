"""The cache job: every response of the input, domain by domain, into the SQLite cache.

Resumable: a domain is done, and skipped, only while its summary's fingerprint
is what the input holds now (memtui.jobs.pieces.Fingerprint); a vector
already in the cache (same model, same backend, same text) is never embedded again.
A domain is worked in pieces (at most PIECE_RESPONSES responses each), its
vectors committed piece by piece, its summary read back from the cache once
its last piece is in: no allocation grows with a domain's size. The
embeddings job is the same work limited to the first N texts, without the
per-domain summaries (its last domain may be cut short).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from memtui.embed.lock import CacheLock
from memtui.embed.presence import CachePresence
from memtui.embed.store import TORCH_BACKEND, CacheStore, key_for
from memtui.errors import InputError, RuntimeFailure
from memtui.jobs.base import CommitResult, Executor, JobTotals, Work
from memtui.jobs.ids import IdIndex
from memtui.jobs.input import InputStats
from memtui.jobs.input_watch import InputChanged, InputWatch, LineDigest
from memtui.jobs.pieces import Fingerprint, read_pieces
from memtui.jobs.scan_progress import ScanProgress
from memtui.jobs.source import InputSource
from memtui.memory.units import format_bytes
from memtui.records import DomainPiece, Response

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
        self._watch: InputWatch | None = None
        self._presence: CachePresence | None = None
        self._done: set[str] = set()
        self._fingerprints: dict[str, bytes] = {}  # each domain's, as the scan read it
        #: per domain in progress: [pieces complete, its number of pieces once the last was seen, or -1]
        self._parts: dict[str, list[int]] = {}

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
            self._watch = InputWatch(self._source.name, self._source.path)
            sizes = self._scan()
            self._watch.scan_done()
            self._store = CacheStore.open(cache, self.model_id, lock=lock, backend=self.backend)
            self._presence = CachePresence(self._store.path)
        except BaseException:
            if self._store is None and lock is not None:
                lock.release()
            self.close()
            raise
        self._done = self._fresh_domains() if self.summaries else set()
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
        fingerprint: Fingerprint | None = None
        assert self._source is not None
        progress = ScanProgress(self._source.name)  # a long scan says it goes on (log lines)
        for piece in self._scoped(self._marked(self.stats, progress)):
            if piece.part == 0 and piece.domain in sizes and self.summaries:
                # A split domain would get a summary per piece and be taken as done after the first.
                raise InputError(
                    f"{self.input_path}:{piece.responses[0].line}: domain {piece.domain!r} appears again after "
                    "other domains; keep each domain's lines together (sort the file by domain)"
                )
            if piece.part == 0:
                fingerprint = Fingerprint()
            assert fingerprint is not None
            for r in piece.responses:
                fingerprint.add(r)
            if piece.last:
                self._fingerprints[piece.domain] = fingerprint.digest()
            sizes[piece.domain] = sizes.get(piece.domain, 0) + len(piece.responses)
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

    def _fresh_domains(self) -> set[str]:
        """Domains done: summarised with the fingerprint of what the input holds now (so every response
        it holds now has its vector, and its summary is of them)."""
        stored = self.store.fingerprints_for(self._fingerprints)
        return {domain for domain, fp in self._fingerprints.items() if stored.get(domain) == fp}

    def _read(
        self,
        stats: InputStats,
        progress: Callable[[InputStats], None] | None = None,
        digest: LineDigest | None = None,
        *,
        check_ids: bool = False,
    ) -> Iterator[DomainPiece]:
        assert self._source is not None
        ids = IdIndex()
        try:
            yield from read_pieces(
                self._source.path,
                where=self._source.name,
                ids=ids,
                strict=self.strict,
                stats=stats,
                check_ids=check_ids,
                progress=progress,
                digest=digest,
            )
        finally:
            ids.close()

    def _marked(self, stats: InputStats, progress: Callable[[InputStats], None]) -> Iterator[DomainPiece]:
        """The scan's pass: the digest of the lines read at each piece's end (jobs.input_watch)."""
        assert self._watch is not None
        digest = LineDigest()
        for piece in self._read(stats, progress, digest, check_ids=True):
            self._watch.scanned_domain(digest)
            yield piece

    def _checked(self, stats: InputStats) -> Iterator[DomainPiece]:
        """The work's pass: each piece the same bytes as the scan's, before it is embedded."""
        assert self._watch is not None
        digest = LineDigest()
        index = 0
        try:
            for piece in self._read(stats, digest=digest):
                self._watch.check_domain(index, digest, piece.domain)
                index += 1
                yield piece
        except InputChanged:
            raise
        except InputError as exc:  # the scan read it all: a break now is a change
            raise self._watch.check_read_error(exc, index) from None
        self._watch.check_end(index)

    def check_intact(self) -> None:
        """Once the work is over: the input is still the file scanned, the cache still at its path."""
        if self._watch is not None:
            self._watch.check_file()
        if self._presence is not None:
            self._presence.check()

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

    def units(self) -> Iterator[DomainPiece]:
        # A second streaming pass: bad lines were counted by open(), so this one keeps its own stats.
        for piece in self._scoped(self._checked(InputStats())):
            if piece.domain not in self._done:
                yield piece

    def _scoped(self, pieces: Iterator[DomainPiece]) -> Iterator[DomainPiece]:
        """Apply --limit (first N domains) and --texts (first N responses)."""
        texts_left = self.limit_texts
        index = -1
        for piece in pieces:
            index += piece.part == 0
            if self.limit_domains is not None and index >= self.limit_domains:
                return
            if texts_left is not None:
                if texts_left <= 0:
                    return
                if len(piece.responses) >= texts_left:
                    piece = DomainPiece(piece.domain, piece.part, piece.responses[:texts_left], last=True)
                texts_left -= len(piece.responses)
            yield piece

    def prepare(self, units: Sequence[DomainPiece]) -> Work:
        for unit in units:
            self._begin_domain(unit)
        keys = [key_for(self.model_id, r.text, self.backend) for unit in units for r in unit.responses]
        texts = {k: r.text for k, r in zip(keys, (r for unit in units for r in unit.responses))}
        missing = self.store.missing(set(keys))
        to_embed = [(k, texts[k]) for k in dict.fromkeys(keys) if k in missing]
        return Work(units=tuple(units), keys=keys, to_embed=to_embed)

    def commit(self, work: Work) -> CommitResult:
        """One transaction: the new vectors, the responses that have a vector, the summaries of the domains
        whose last piece this brings (read back from the cache, so of every piece, this run's or not)."""
        pending = {k for k, _ in work.to_embed if k not in work.vectors}
        responses: list[Response] = []
        completed: list[str] = []
        finished: list[int] = []
        items_completed = 0
        stored: list[tuple[str, int, int]] = []
        offset = 0
        for index, unit in enumerate(work.units):
            unit_keys = work.keys[offset : offset + len(unit.responses)]
            offset += len(unit.responses)
            have = [(r, k) for r, k in zip(unit.responses, unit_keys) if k not in pending]
            responses.extend(r for r, _ in have)
            stored.append((_piece_name(unit), len(have), len(unit.responses)))
            if len(have) == len(unit.responses):
                finished.append(index)
                items_completed += len(unit.responses)
                if self._piece_done(unit):
                    completed.append(unit.domain)
        finish = [(d, self._fingerprints.get(d)) for d in completed] if self.summaries else []
        self.store.commit_batch(work.vectors, responses, finish=finish)
        if self._presence is not None:
            self._presence.check()
        return CommitResult(
            completed=tuple(completed),
            items_completed=items_completed,
            vectors_written=len(work.vectors),
            stored=tuple(stored),
            finished=tuple(finished),
        )

    def _begin_domain(self, piece: DomainPiece) -> None:
        """A domain's first piece, prepared before any of its pieces is committed (in either engine): its old
        summary and rows go, rebuilt from what it holds now. Once per run (a retried first piece must not
        drop the rows its domain's later pieces committed)."""
        if piece.part == 0 and piece.domain not in self._parts:
            self._parts[piece.domain] = [0, -1]
            if self.summaries:
                self.store.forget_domain(piece.domain)

    def _piece_done(self, piece: DomainPiece) -> bool:
        """Count a piece of its domain in; True when it was the domain's last one missing (pieces may end
        out of order: a cluster runs them side by side)."""
        parts = self._parts.setdefault(piece.domain, [0, -1])
        parts[0] += 1
        if piece.last:
            parts[1] = piece.part + 1
        if parts[0] == parts[1]:
            del self._parts[piece.domain]
            return True
        return False

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._source is not None:
            self._source.close()
            self._source = None


def _piece_name(piece: DomainPiece) -> str:
    """A piece's name in CommitResult.stored: its domain alone when it is the whole of it."""
    return piece.domain if piece.part == 0 and piece.last else f"{piece.domain} (part {piece.part + 1})"
