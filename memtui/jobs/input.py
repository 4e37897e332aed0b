"""Streaming reader for the JSON Lines input (plain or gzip).

Only the current domain's group is ever held in memory, so the input's size
never shows up in RSS; bad lines are counted and skipped (or raised with
``strict``) so one broken record does not lose a night's run.

No line is held whole beyond ``MAX_LINE_BYTES``: a longer one (a runaway
response, a binary file passed by mistake) is a bad line, read past in
bounded chunks, never a memory spike.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from memtui.errors import InputError
from memtui.jobs.input_watch import LineDigest
from memtui.records import DomainGroup, Response

GZIP_MAGIC = b"\x1f\x8b"
REQUIRED_FIELDS = ("domain", "model", "prompt_type", "response")
#: The longest line (without its line ending) memtui reads; a longer line is a bad line.
#: 16 MiB holds a 10-million-character response written as ASCII or mostly-ASCII JSON
#: (the largest seen in the field; the bundled sample's largest is 26 thousand),
#: while keeping one line's cost bounded: the bytes, their decoded text and the parsed
#: response are all alive while a line is parsed (about 3x the line), and a text that
#: cannot be cut to its window (one enormous word, or mostly whitespace) costs the
#: tokenizer about 55 bytes a character (~0.9 GB at 16 MiB).
MAX_LINE_BYTES = 16 << 20
#: Lines are read in pieces of this size (the rest of an over-long line is read and dropped).
CHUNK_BYTES = 1 << 20
#: Bad lines kept with their line number and reason (all are counted).
MAX_BAD_DETAILS = 100
#: A scan's progress hook is called at least every this many lines and every this many bytes.
PROGRESS_LINES = 4096
PROGRESS_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class BadLine:
    """One skipped line: its number in the file and why it was skipped."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"

    def as_dict(self) -> dict[str, int | str]:
        return {"line": self.line, "reason": self.reason}


@dataclass
class InputStats:
    """Counters updated while streaming.

    Plain ints written by the reading thread only, so another thread (a TUI)
    may read them at any time without a lock.
    """

    lines: int = 0
    bytes_read: int = 0  # uncompressed, line endings included
    responses: int = 0
    domains: int = 0
    bad_lines: int = 0
    skipped_domains: int = 0
    skipped_responses: int = 0
    repeated_domains: int = 0
    bad_details: list[BadLine] = field(default_factory=list)  # the first MAX_BAD_DETAILS

    def _bad(self, line: int, reason: str) -> None:
        self.bad_lines += 1
        if len(self.bad_details) < MAX_BAD_DETAILS:
            self.bad_details.append(BadLine(line, reason))


class _BadLine(Exception):
    """A reason a single line is unusable; never leaves this module."""


class _Record:
    """One valid line as its raw dict: a Response is built only for domains not skipped."""

    __slots__ = ("data", "line")

    def __init__(self, line: int, data: dict) -> None:
        self.line = line
        self.data = data


@contextmanager
def _open(path: Path, where: str) -> Iterator[BinaryIO]:
    """Open for binary reading; gzip is chosen by magic bytes, not by suffix."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputError(f"no input file at {where}; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{where} is a directory; pass a .jsonl or .jsonl.gz file") from None
    except PermissionError:
        raise InputError(f"cannot read {where}: permission denied; fix its permissions (chmod u+r)") from None
    except OSError as exc:
        raise InputError(f"cannot open {where}: {exc.strerror or exc}; check the path") from None
    with raw:
        try:
            magic = raw.peek(2)[:2]  # peek, not seek: pipes and FIFOs work too
        except OSError as exc:
            raise InputError(f"cannot read {where}: {exc.strerror or exc}; check the file") from None
        if magic != GZIP_MAGIC:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield unzipped  # type: ignore[misc]


def _too_long() -> str:
    return f"longer than {MAX_LINE_BYTES / (1 << 20):g}MB, the most memtui reads per line"


def _lines(fh: BinaryIO) -> Iterator[bytes | bytearray | None]:
    """Each line with its line ending, or None for a line longer than MAX_LINE_BYTES.

    Read in CHUNK_BYTES pieces (``readline`` with a limit never buffers more):
    a line of one piece is passed on as it came; a longer one grows in one
    bytearray (no join, so no second copy) up to MAX_LINE_BYTES, past which
    it is dropped and the rest of it read and thrown away piece by piece.
    """
    while True:
        piece = fh.readline(CHUNK_BYTES)
        if not piece:
            return
        if len(piece) < CHUNK_BYTES or piece.endswith(b"\n"):
            raw: bytes | bytearray = piece
        else:
            raw = bytearray(piece)
            while not raw.endswith(b"\n") and len(raw) <= MAX_LINE_BYTES + 1:
                piece = fh.readline(CHUNK_BYTES)
                if not piece:
                    break
                raw += piece
            if not raw.endswith(b"\n") and len(raw) > MAX_LINE_BYTES + 1:
                raw = b""  # let it go before reading on
                while piece and not piece.endswith(b"\n"):
                    piece = fh.readline(CHUNK_BYTES)
                yield None
                continue
        yield None if len(raw) - _ending(raw) > MAX_LINE_BYTES else raw


def _ending(raw: bytes | bytearray) -> int:
    return 2 if raw.endswith(b"\r\n") else 1 if raw.endswith((b"\n", b"\r")) else 0


def _parse(raw: bytes | bytearray, line: int) -> dict:
    """Validate one response line (line ending included); raise _BadLine with a short reason."""
    data = parse_object(raw, line)
    for name in REQUIRED_FIELDS:
        if name not in data:
            raise _BadLine(f"missing field '{name}'")
        value = data[name]
        if not isinstance(value, str):
            raise _BadLine(f"field '{name}' must be a string, got {type(value).__name__}")
        if not value.strip():
            raise _BadLine(f"empty field '{name}'")
        try:
            value.encode("utf-8")  # JSON escapes can smuggle in lone surrogates that keys cannot hash
        except UnicodeEncodeError:
            raise _BadLine(f"field '{name}' holds an unpaired surrogate escape") from None
    return data


def parse_object(raw: bytes | bytearray, line: int) -> dict:
    """Any JSON object line (a user job's item): UTF-8, valid JSON, an object, a usable ``id`` if any."""
    try:
        with memoryview(raw) as view:  # decode without the line ending, and without copying the line to cut it
            text = str(view[: len(raw) - _ending(raw)], "utf-8")
    except UnicodeDecodeError as exc:
        raise _BadLine(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
    if line == 1:
        text = text.removeprefix("\ufeff")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"malformed JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _BadLine("malformed JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise _BadLine(f"expected a JSON object, got {type(data).__name__}")
    rid = data.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid) == ""):
        raise _BadLine("field 'id' must be a non-empty string or an integer")
    return data


def _records(
    path: Path,
    stats: InputStats,
    strict: bool,
    where: str,
    progress: Callable[[InputStats], None] | None = None,
    digest: LineDigest | None = None,
    parse: Callable[[bytes | bytearray, int], dict] | None = None,
) -> Iterator[_Record]:
    """Yield valid lines in order; count and skip (or raise on) bad ones; messages name the input ``where``.

    ``progress(stats)`` is called every PROGRESS_LINES lines or PROGRESS_BYTES bytes (a scan says it goes on);
    ``digest`` sees every line read, so two passes can prove they read the same bytes (jobs.input_watch);
    ``parse``: what a valid line is (default: a response; ``parse_object``: any JSON object)."""
    line = 0
    check_at = PROGRESS_BYTES
    with _open(path, where) as fh:
        try:
            for raw in _lines(fh):
                if digest is not None:
                    digest.update(raw)
                line += 1
                stats.lines = line
                stats.bytes_read += MAX_LINE_BYTES if raw is None else len(raw)
                if progress is not None and (line % PROGRESS_LINES == 0 or stats.bytes_read >= check_at):
                    check_at = stats.bytes_read + PROGRESS_BYTES
                    progress(stats)
                if raw is not None and raw.isspace():
                    continue
                try:
                    if raw is None:
                        raise _BadLine(_too_long())
                    data = (parse or _parse)(raw, line)
                except _BadLine as bad:
                    if strict:
                        raise InputError(f"{where}:{line}: {bad}; fix the line or run without --strict") from None
                    stats._bad(line, str(bad))
                    continue
                yield _Record(line, data)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(
                f"{where}: gzip stream is corrupt or truncated after line {line} ({exc}); re-create the file and rerun"
            ) from None
        except OSError as exc:
            raise InputError(
                f"{where}: read failed after line {line} ({exc.strerror or exc}); check the file"
            ) from None


def _response(record: _Record, seen: dict[str, int]) -> Response:
    """Build a Response; a missing id becomes a content hash, stable across file edits."""
    d = record.data
    rid = d.get("id")
    if rid is None:
        digest = hashlib.blake2b(digest_size=8)
        for name in REQUIRED_FIELDS:
            digest.update(d[name].encode("utf-8") + b"\0")
        rid = "h" + digest.hexdigest()
        n = seen.get(rid, 0) + 1
        seen[rid] = n
        if n > 1:  # identical duplicate in the same domain: keep both rows
            rid = f"{rid}-{n}"
    return Response(
        id=str(rid),
        domain=d["domain"],
        model=d["model"],
        prompt_type=d["prompt_type"],
        text=d["response"],
        line=record.line,
    )


def read_domains(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    stats: InputStats | None = None,
    skip: Callable[[str], bool] | None = None,
    name: str | None = None,
    progress: Callable[[InputStats], None] | None = None,
    digest: LineDigest | None = None,
) -> Iterator[DomainGroup]:
    """Yield one group per contiguous run of a domain (messages call the input ``name``, default its path).

    A group is yielded only once the next domain (or the end) proves it
    complete; a stream that breaks mid-file therefore never yields a cut
    group. ``skip(domain)`` is asked once per group, before its Response
    objects are built. ``progress(stats)`` is called now and then (see ``_records``).
    """
    path = Path(path)
    stats = stats if stats is not None else InputStats()
    seen_domains: set[str] = set()
    current: str | None = None
    skipping = False
    group: list[Response] = []
    ids: dict[str, int] = {}

    def finish() -> DomainGroup | None:
        if current is None or skipping:
            return None
        return DomainGroup(current, tuple(group))

    for record in _records(path, stats, strict, name or str(path), progress, digest):
        domain = record.data["domain"]
        if domain != current:
            done = finish()
            if done is not None:
                yield done
            current, group, ids = domain, [], {}
            stats.domains += 1
            if domain in seen_domains:
                stats.repeated_domains += 1
            seen_domains.add(domain)
            skipping = bool(skip and skip(domain))
            if skipping:
                stats.skipped_domains += 1
        stats.responses += 1
        if skipping:
            stats.skipped_responses += 1
        else:
            group.append(_response(record, ids))
    done = finish()
    if done is not None:
        yield done


def count_input(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(domains, responses) by a streaming pre-scan, for progress totals.

    A stream that breaks mid-file returns what was counted: the real read
    reports the break, after processing the complete domains.
    """
    stats = InputStats()
    try:
        for _ in read_domains(path, stats=stats, skip=lambda _d: True):
            pass
    except InputError:
        if stats.lines == 0:
            raise
    return stats.domains, stats.responses
