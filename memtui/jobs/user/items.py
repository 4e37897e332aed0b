"""The ItemJob: a user's function over the input's JSON objects, for the Runner (memtui.jobs.base).

The input is read as a stream, twice (a scan for totals and resume, then the work), in pieces of
``call_items`` items: one piece is one call of the function and one unit of the Runner's batches, so
the guard's batch sizes count calls. An item's key is its ``id`` field as JSON text (so ``1`` and ``"1"``
stay two items), else a hash of its content; its
fingerprint is a hash of its content, so a result is reused only for the item it was computed from.
Nothing grows with the input but one 32-byte mark per piece (the input may not change under a run:
memtui.jobs.input_watch); a piece's items, a batch's results and the first MAX_FAILED failures.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from memtui.errors import InputError
from memtui.jobs.base import CommitResult, Executor, JobTotals, Work
from memtui.jobs.input import InputStats, _records, parse_object
from memtui.jobs.input_watch import InputChanged, InputWatch, LineDigest
from memtui.jobs.source import InputSource
from memtui.jobs.user.executor import Encoded, Failed, FunctionExecutor
from memtui.jobs.user.results import HASH_KEY, ResultsStore, key_value

#: Failed items named in the report (all are counted).
MAX_FAILED = 100


@dataclass(frozen=True, slots=True)
class Item:
    line: int
    key: str
    fingerprint: bytes
    text: str  # the item as canonical JSON: what the function gets back as a dict


@dataclass(frozen=True)
class ItemPiece:
    """One call's items (consecutive lines)."""

    items: tuple[Item, ...]

    @property
    def name(self) -> str:
        first, last = self.items[0].line, self.items[-1].line
        return f"line {first}" if first == last else f"lines {first}-{last}"

    @property
    def domain(self) -> str:  # Work.names reads a unit's domain
        return self.name


def make_item(line: int, data: dict[str, Any]) -> Item:
    """An item keyed by its ``id`` as JSON text (``1`` and ``"1"`` are two ids, as in JSON), else its hash."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))  # ASCII: a lone surrogate survives
    digest = hashlib.sha256(text.encode()).digest()
    rid = data.get("id")
    key = json.dumps(rid, sort_keys=True, separators=(",", ":")) if rid is not None else HASH_KEY + digest.hex()[:32]
    return Item(line, key, digest[:16], text)


class ItemJob:
    mode = "job"
    backend: str | None = None
    unit_word = "calls"
    item_word = "items"

    def __init__(
        self,
        input_path: str | os.PathLike[str],
        output_path: str | os.PathLike[str],
        executor: FunctionExecutor,
        *,
        strict: bool = False,
    ) -> None:
        self.input_path = str(input_path)
        self.cache_path = str(output_path)
        self.executor: Executor = executor  # the Runner's contract (a mutable attribute: typed as the protocol)
        self.function = executor
        self.model_id = executor.name
        self.strict = strict
        self.stats = InputStats()
        self.items_failed = 0
        self.failed_items: list[dict[str, Any]] = []
        self._store: ResultsStore | None = None
        self._source: InputSource | None = None
        self._watch: InputWatch | None = None

    @property
    def store(self) -> ResultsStore:
        if self._store is None:
            raise RuntimeError("ItemJob.open() first")
        return self._store

    def open(self) -> JobTotals:
        """Scan the input (a bad input fails before any results file exists), then open the results file."""
        try:
            self._source = InputSource.open(self.input_path)
            self._watch = InputWatch(self._source.name, self._source.path, units="pieces")
            pieces = items = 0
            digest = LineDigest()
            for piece in self._pieces(self.stats, digest):
                self._watch.scanned_domain(digest)
                pieces += 1
                items += len(piece.items)
            self._watch.scan_done()
            if not items:
                first = self.stats.bad_details[0] if self.stats.bad_details else None
                bad = f" ({self.stats.bad_lines} bad line(s), e.g. line {first.line}: {first.reason})" if first else ""
                raise InputError(f"{self.input_path} holds no items{bad}; pass JSON Lines of objects, one item a line")
            self._store = ResultsStore.open(self.cache_path, self.model_id)
            pieces_done = items_done = 0
            for piece in self._pieces(InputStats()):
                done = self._done(piece)
                items_done += sum(item.key in done for item in piece.items)
                pieces_done += all(item.key in done for item in piece.items)
        except BaseException:
            self.close()
            raise
        return JobTotals(
            units=pieces,
            items=items,
            units_done=pieces_done,
            items_done=items_done,
            bad_lines=self.stats.bad_lines,
            bad_line_details=tuple(self.stats.bad_details),
        )

    def _pieces(self, stats: InputStats, digest: LineDigest | None = None) -> Iterator[ItemPiece]:
        """The input in pieces of one call's items; ``digest`` sees every line (jobs.input_watch)."""
        assert self._source is not None
        group: list[Item] = []
        size = self.function.call_items
        path, name = self._source.path, self._source.name
        for record in _records(path, stats, self.strict, name, digest=digest, parse=parse_object):
            group.append(make_item(record.line, record.data))
            if len(group) >= size:
                yield ItemPiece(tuple(group))
                group = []
        if group:
            yield ItemPiece(tuple(group))

    def _done(self, piece: ItemPiece) -> set[str]:
        return self.store.done([(item.key, item.fingerprint) for item in piece.items])

    def units(self) -> Iterator[ItemPiece]:
        """The work's pass: each piece the same bytes as the scan's (else InputChanged, exit 2), done ones skipped."""
        assert self._watch is not None
        digest = LineDigest()
        index = 0
        try:
            for piece in self._pieces(InputStats(), digest):
                self._watch.check_domain(index, digest, piece.name)
                index += 1
                done = self._done(piece)
                if not all(item.key in done for item in piece.items):
                    yield piece
        except InputChanged:
            raise
        except InputError as exc:  # the scan read it all: a break now is a change
            raise self._watch.check_read_error(exc, index) from None
        self._watch.check_end(index)

    def prepare(self, units: Sequence[ItemPiece]) -> Work:
        items = [item for piece in units for item in piece.items]
        done = self.store.done([(item.key, item.fingerprint) for item in items])
        keys = [item.key.encode() for item in items]
        to_embed = list({item.key.encode(): item.text for item in items if item.key not in done}.items())
        return Work(units=tuple(units), keys=keys, to_embed=to_embed)  # type: ignore[arg-type]

    def commit(self, work: Work) -> CommitResult:
        """One transaction: every result the batch made, every item it failed on; pieces fully answered finish.

        The counts are this batch's own: items done before it (a resumed run's) are the run's ``items_skipped``,
        never counted again as committed or completed."""
        pending = {k for k, _ in work.to_embed if k not in work.vectors}
        rows, failures, finished, stored = [], [], [], []
        items_completed = 0
        for index, piece in enumerate(work.units):
            have = new = 0
            for item in piece.items:  # type: ignore[attr-defined]
                key = item.key.encode()
                if key in pending:
                    continue
                have += 1
                if key not in work.vectors:
                    continue  # done before this batch
                items_completed += 1
                value = work.vectors[key]
                if isinstance(value, Failed):
                    failures.append((item.key, item.fingerprint, item.line, value.error))
                    self._failed(item, value.error)
                else:
                    text = value.text if isinstance(value, Encoded) else json.dumps(value, allow_nan=False)
                    rows.append((item.key, item.fingerprint, item.line, text))
                    new += 1
            stored.append((piece.name, new, new))  # results this batch committed
            if have == len(piece.items):  # type: ignore[attr-defined]
                finished.append(index)
        self.store.commit(rows, failures)
        return CommitResult(
            completed=tuple(work.units[i].name for i in finished),
            items_completed=items_completed,
            vectors_written=len(rows),
            stored=tuple(stored),
            finished=tuple(finished),
        )

    def _failed(self, item: Item, error: str) -> None:
        self.items_failed += 1
        if len(self.failed_items) < MAX_FAILED:
            self.failed_items.append({"key": key_value(item.key), "line": item.line, "error": error})

    def check_intact(self) -> None:
        """Once the work is over: the input is still the file scanned."""
        if self._watch is not None:
            self._watch.check_file()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._source is not None:
            self._source.close()
            self._source = None
