"""A finished domain's summary: responses per model/prompt type and the cross-model agreement score.

Built from the responses and their vectors in memory (``summarize_domain``) or from the cache's rows, read
``SUMMARY_ROWS`` at a time (``summarize_rows``): memory stays a few vectors whatever the domain's size.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memtui.embed.agreement import AgreementSums
from memtui.errors import StoreError
from memtui.records import Response

#: Labels (model/prompt type) a summary's counts name; the rest are summed under OTHER_LABELS.
MAX_COUNT_LABELS = 1000
OTHER_LABELS = "(other labels)"
#: Rows read at a time when a domain is summarised from the cache.
SUMMARY_ROWS = 1024


@dataclass(frozen=True)
class DomainSummary:
    domain: str
    responses: int
    counts: dict[str, int]
    agreement: float | None
    done_at: float
    #: What the domain held when it was summarised (memtui.jobs.domains.Fingerprint); None: not known
    #: (an older memtui's summary), so the domain is checked again.
    fingerprint: bytes | None = None

    def row(self) -> tuple[Any, ...]:
        """The summary as the ``domains`` table holds it (counts as sorted JSON)."""
        counts = json.dumps(self.counts, sort_keys=True)
        return (self.domain, self.responses, counts, self.agreement, self.done_at, self.fingerprint)


class CountsTally:
    """Responses per model/prompt type, naming at most MAX_COUNT_LABELS of them (a summary stays small)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.total = 0

    def add(self, label: str, n: int = 1) -> None:
        self.total += n
        if label in self.counts or len(self.counts) < MAX_COUNT_LABELS:
            self.counts[label] = self.counts.get(label, 0) + n
        else:
            self.counts[OTHER_LABELS] = self.counts.get(OTHER_LABELS, 0) + n

    def sorted(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def summarize_domain(
    domain: str,
    responses: Sequence[Response],
    vector_lookup: Callable[[Response], np.ndarray],
) -> DomainSummary:
    """Counts per model/prompt type and the cross-model agreement score.

    Agreement is the mean cosine similarity over every pair of responses to
    the same prompt type from different models, pooled across prompt types;
    None when no prompt type was answered by two models. Computed exactly
    from running sums (memtui.embed.agreement), never a pairwise matrix.
    """
    counts = CountsTally()
    sums = AgreementSums()
    for r in sorted(responses, key=lambda r: (r.prompt_type, r.model)):
        counts.add(f"{r.model}/{r.prompt_type}")
        sums.add(r.prompt_type, r.model, np.asarray(vector_lookup(r)))
    return DomainSummary(domain, len(responses), counts.sorted(), sums.score(), time.time())


def summarize_rows(cursor: sqlite3.Cursor, domain: str, fingerprint: bytes | None) -> DomainSummary:
    """A domain's summary from its (prompt type, model, vector, id) rows ordered by prompt type and model,
    fetched SUMMARY_ROWS at a time. Raises StoreError if a row has no vector (the domain cannot be done)."""
    counts, sums = CountsTally(), AgreementSums()
    while rows := cursor.fetchmany(SUMMARY_ROWS):
        start = 0
        for end in range(1, len(rows) + 1):
            if end < len(rows) and rows[end][:2] == rows[start][:2]:
                continue
            prompt_type, model = rows[start][0], rows[start][1]
            blobs = [row[2] for row in rows[start:end]]
            if any(blob is None for blob in blobs):
                rid = next(row[3] for row in rows[start:end] if row[2] is None)
                raise StoreError(f"no vector for response {rid} of domain {domain}; rerun to embed it")
            counts.add(f"{model}/{prompt_type}", end - start)
            sums.add(prompt_type, model, np.frombuffer(b"".join(blobs), dtype="<f4").reshape(end - start, -1))
            start = end
    return DomainSummary(domain, counts.total, counts.sorted(), sums.score(), time.time(), fingerprint)
