"""The cross-model agreement score, exactly, without the pairwise matrix.

The mean cosine over every pair of responses to one prompt type from two
different models is

    (||sum of all unit vectors||^2 - sum over models of ||sum of that model's unit vectors||^2) / 2
    / (number of cross-model pairs)

so one running sum per (prompt type, model) gives it in float64. Fed in
(prompt type, model) order, only one prompt type's total and one model's sum
are alive at a time: a domain of any size costs a few vectors of memory (the
old n x n matrix cost 8 n^2 bytes: 3.2 GB at 20,000 responses).
"""

from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """The rows as float64 unit vectors; a zero vector stays zero (it still counts in the pairs)."""
    rows = np.asarray(vectors, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[None, :]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0.0, 1.0, norms)


class AgreementSums:
    """Streaming sums for the agreement score; ``add`` must come grouped by (prompt type, model).

    A (prompt type, model) pair may arrive in several calls in a row; once the
    prompt type changes, the last one is folded into the totals and forgotten.
    """

    def __init__(self) -> None:
        self.cross_sum = 0.0  # sum of cosines over cross-model pairs, all prompt types
        self.cross_pairs = 0
        self._prompt: str | None = None
        self._model: str | None = None
        self._total: np.ndarray | None = None  # this prompt type's sum of unit vectors
        self._n = 0  # its responses
        self._model_sum: np.ndarray | None = None  # the current model's sum within it
        self._model_n = 0
        self._within_sq = 0.0  # sum over its finished models of ||model sum||^2
        self._within_n2 = 0  # sum over its finished models of n_m^2

    def add(self, prompt_type: str, model: str, vectors: np.ndarray) -> None:
        units = unit_rows(vectors)
        if prompt_type != self._prompt:
            self._end_prompt()
            self._prompt = prompt_type
        if model != self._model:
            self._end_model()
            self._model = model
        block = units.sum(axis=0)
        self._model_sum = block if self._model_sum is None else self._model_sum + block
        self._total = block.copy() if self._total is None else self._total + block
        self._model_n += len(units)
        self._n += len(units)

    def _end_model(self) -> None:
        if self._model_sum is not None:
            self._within_sq += float(self._model_sum @ self._model_sum)
            self._within_n2 += self._model_n * self._model_n
        self._model, self._model_sum, self._model_n = None, None, 0

    def _end_prompt(self) -> None:
        self._end_model()
        if self._total is not None:
            pairs = (self._n * self._n - self._within_n2) // 2
            if pairs:
                self.cross_sum += (float(self._total @ self._total) - self._within_sq) / 2.0
                self.cross_pairs += pairs
        self._prompt, self._total, self._n = None, None, 0
        self._within_sq, self._within_n2 = 0.0, 0

    def score(self) -> float | None:
        """The pooled mean cosine; None when no prompt type was answered by two models."""
        self._end_prompt()
        return self.cross_sum / self.cross_pairs if self.cross_pairs else None
