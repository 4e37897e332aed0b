"""The input as domain pieces: a domain of any size read in bounded parts.

``read_domains`` (memtui.jobs.input) holds a whole domain; a domain of a
million responses would then sit in RAM (its texts, its Response objects) and
in one batch. Here a domain comes in pieces of at most PIECE_RESPONSES, each
yielded once the next line proves whether more of the domain follows (its
``last`` flag), so a stream cut mid-domain never yields a last piece.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

from memtui.errors import InputError
from memtui.jobs.ids import IdIndex
from memtui.jobs.input import InputStats, _records, _response
from memtui.jobs.input_watch import LineDigest
from memtui.records import DomainPiece, Response

#: Responses per piece: a piece's texts, vectors and rows are what one unit of work holds.
PIECE_RESPONSES = 512


class Fingerprint:
    """What a domain holds, in 32 bytes: every response's id, model, prompt type and text, in order.

    A summary is stored with its domain's fingerprint; the domain is done only while the input gives the
    same one (a response added, removed or changed makes it undone)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, r: Response) -> None:
        for part in (r.id, r.model, r.prompt_type, r.text):
            data = part.encode("utf-8")
            self._hash.update(len(data).to_bytes(8, "little") + data)

    def digest(self) -> bytes:
        return self._hash.digest()


def read_pieces(
    path: Path,
    *,
    where: str,
    ids: IdIndex,
    strict: bool = False,
    stats: InputStats | None = None,
    check_ids: bool = False,
    size: int = PIECE_RESPONSES,
    progress: Callable[[InputStats], None] | None = None,
    digest: LineDigest | None = None,
) -> Iterator[DomainPiece]:
    """Each domain's responses in pieces of at most ``size`` (a domain split by other domains comes back as
    another run of pieces from part 0). ``ids`` numbers content-hash ids; ``check_ids``: refuse (InputError,
    exit 2) an explicit id seen on an earlier line, naming both lines. ``progress`` and ``digest``: as
    read_domains'."""
    stats = stats if stats is not None else InputStats()
    current: str | None = None
    part = 0
    group: list[Response] = []
    for record in _records(path, stats, strict, where, progress, digest):
        domain = record.data["domain"]
        if check_ids and record.data.get("id") is not None:
            _check_id(str(record.data["id"]), record.line, ids, where)
        if domain != current or len(group) >= size:
            if current is not None:
                yield DomainPiece(current, part, tuple(group), last=domain != current)
            part = part + 1 if domain == current else 0
            if domain != current:
                stats.domains += 1
            current, group = domain, []
        stats.responses += 1
        group.append(_response(record, ids))  # type: ignore[arg-type]  # IdIndex is the mapping it needs
    if current is not None:
        yield DomainPiece(current, part, tuple(group), last=True)


def _check_id(rid: str, line: int, ids: IdIndex, where: str) -> None:
    first = ids.first_line(rid, line)
    if first is not None:
        raise InputError(
            f"{where}:{line}: id {rid!r} repeats the id of line {first}; the cache keeps one row per id, "
            "so give each response its own id (or drop the id field: memtui then derives one from the content)"
        )
