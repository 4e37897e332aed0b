"""``memtui similar``: the K responses nearest a query, by cosine, over the whole cache in bounded chunks.

The query is embedded with the cache's own model and backend (the vector key
rules of ``memtui.embed.store.key_for``); a query whose text is already in the
cache, or ``--key``, uses the stored vector and loads no model. The scan keeps
one chunk of vectors and a K-entry heap, never the cache.

The cache keeps no response texts (only each text's key), so a result shows
the response's id, domain, model and prompt type: look its text up by id in
the input.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from memtui.embed.reader import CacheReader
from memtui.embed.store import TORCH_BACKEND, key_for
from memtui.errors import UsageError

#: Rows above which the scan says how far it got (stderr), every ``PROGRESS_EVERY_S``.
PROGRESS_ROWS = 100_000
PROGRESS_EVERY_S = 2.0
TOP_MAX = 10_000
NO_TEXT = "the cache keeps no response texts, only their keys: look a response up by its id in your input"


@dataclass(frozen=True)
class Match:
    score: float
    id: str
    domain: str
    model: str
    prompt_type: str
    key: str
    backend: str
    text: str | None = None  # the cache keeps none

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Query:
    vector: np.ndarray
    backend: str
    how: str  # "cached vector" (no model) or "embedded with <model> (<backend>)"


def parse_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"--key {text!r} is not hex; pass a key as 'memtui cache export' writes it") from None
    if len(key) != 32:
        raise UsageError(f"--key {text!r} has {len(key)} bytes, a cache key has 32; pass a whole key")
    return key


def choose_backend(reader: CacheReader, flag: str | None, configured: Callable[[], str]) -> str:
    """--backend (as the cache names it); else the cache's only backend; else the run's choice if the cache has it."""
    if flag is not None:
        return reader.resolve_backend(flag)
    present = list(reader.backends())
    if len(present) == 1:
        return present[0]
    wanted = configured()
    matches = [b for b in present if b.split("/")[0] == wanted]
    if len(matches) == 1:
        return matches[0]
    raise UsageError(f"cache {reader.path} holds vectors of {', '.join(present)}; pass --backend one of them")


def query_from_key(reader: CacheReader, key: bytes) -> Query:
    found = reader.vector(key)
    if found is None:
        raise UsageError(f"--key {key.hex()} is not in cache {reader.path}; pass a key from its export")
    vector, backend = found
    return Query(vector, backend, "cached vector (no model loaded)")


def query_from_text(reader: CacheReader, text: str, backend: str, *, model: str | None = None) -> Query:
    """The stored vector if this text (same model, same backend) is cached; else the model embeds it."""
    cached = reader.vector(key_for(reader.model_id, text, backend))
    if cached is not None:
        return Query(cached[0], backend, "cached vector of the same text (no model loaded)")
    from memtui.embed.model import Embedder  # noqa: PLC0415 - torch loads only when a text must be embedded

    base = backend.split("/")[0]
    embedder = Embedder(model or reader.model_id, backend=base)
    if embedder.model_id != reader.model_id:
        raise UsageError(
            f"cache {reader.path} holds vectors of {reader.model_id}, not {embedder.model_id}; "
            f"pass --model {reader.model_id}"
        )
    if (base != TORCH_BACKEND) and embedder.vector_backend != backend:
        raise UsageError(
            f"the cache's {backend} vectors come from another export recipe or CPU than this machine's "
            f"{embedder.vector_backend}; pass --backend torch or --key KEY"
        )
    embedder.check()
    from memtui.embed.footprint import require_room  # noqa: PLC0415
    from memtui.memory.probe import discover_limit  # noqa: PLC0415

    require_room(discover_limit(), model or reader.model_id)  # a container too small for the model: one line, exit 1
    vector = embedder.encode([text])[0]
    return Query(np.asarray(vector, dtype=np.float32), backend, f"embedded with {reader.model_id} ({backend})")


def nearest(
    reader: CacheReader,
    query: np.ndarray,
    *,
    top: int,
    backend: str,
    domains: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda _line: None,
    clock: Callable[[], float] = time.monotonic,
) -> list[Match]:
    """The ``top`` rows nearest ``query`` by cosine, best first; one chunk and a ``top``-entry heap in memory."""
    q = np.asarray(query, dtype=np.float64).ravel()
    q = q / (np.linalg.norm(q) or 1.0)
    heap: list[tuple[float, int, Match]] = []  # a min-heap of the best so far; the int breaks ties in order
    seen = 0
    with reader.snapshot():
        total = reader.count(backend, domains)
        say = total >= PROGRESS_ROWS
        if say:
            log(f"similar: comparing the query with {total} vectors")
        next_line = clock() + PROGRESS_EVERY_S
        for batch in reader.batches(backend, domains):
            matrix = batch.matrix.astype(np.float64)
            norms = np.linalg.norm(matrix, axis=1)
            scores = matrix @ q / np.where(norms == 0.0, 1.0, norms)
            best = np.argsort(-scores, kind="stable")[:top] if len(scores) > top else np.argsort(-scores, kind="stable")
            for i in best:
                score = float(scores[i])
                if len(heap) == top and score <= heap[0][0]:
                    break  # best is sorted: no later row of this chunk gets in
                match = Match(
                    round(score, 6),
                    batch.ids[i],
                    batch.domains[i],
                    batch.models[i],
                    batch.prompt_types[i],
                    batch.keys[i].hex(),
                    batch.backend,
                )
                entry = (score, -(seen + int(i)), match)
                if len(heap) < top:
                    heapq.heappush(heap, entry)
                else:
                    heapq.heapreplace(heap, entry)
            seen += len(batch)
            if say and clock() >= next_line:
                next_line = clock() + PROGRESS_EVERY_S
                log(f"similar: {seen}/{total} vectors compared ({100 * seen // max(total, 1)}%)")
    return [entry[2] for entry in sorted(heap, key=lambda e: (-e[0], -e[1]))]


def table(matches: list[Match]) -> list[str]:
    """The results as a person reads them."""
    lines = [f"{'score':>7}  {'domain':<20} {'model':<14} {'prompt_type':<14} id"]
    for m in matches:
        lines.append(f"{m.score:7.4f}  {m.domain[:20]:<20} {m.model[:14]:<14} {m.prompt_type[:14]:<14} {m.id}")
    return lines
