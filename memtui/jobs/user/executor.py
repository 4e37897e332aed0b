"""Calls the user's function on sub-batches for the Runner (the Executor contract of memtui.jobs.base).

``encode_iter`` gets the items' JSON texts and yields (indices, results) one sub-batch at a time, so the
Runner pauses, cleans up and waits on the breaker between calls. A call that raises is retried on each
half of its sub-batch, down to single items: one bad item costs only itself (a ``Failed`` in its place),
every other result is kept. A MemoryError is the Runner's (it halves the batch); a wrong number of results
ends the run, naming the function and the sizes. ``clear_caches``/``unload`` run the job's cleanup hooks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from memtui.errors import RuntimeFailure
from memtui.jobs.base import TokenBudget
from memtui.jobs.user.hooks import run_hooks

#: Items per call by default (``--job-batch``): small enough that the guard acts between calls.
DEFAULT_CALL_ITEMS = 16


@dataclass(frozen=True)
class Failed:
    """An item the function failed on alone: its error, in one line."""

    error: str


@dataclass(frozen=True, slots=True)
class Encoded:
    """A result as the JSON text the results file stores: encoded once, here (a 200 MB result is not
    encoded again at the commit), and the function's own object can go at once."""

    text: str


class WrongLength(RuntimeFailure):
    """The function broke its contract (one result per item): the run ends (exit 1)."""


class FunctionExecutor:
    def __init__(self, fn: Callable[[list[Any]], Any], name: str, *, call_items: int = DEFAULT_CALL_ITEMS) -> None:
        self.fn = fn
        self.name = name
        self.call_items = max(1, call_items)
        self.calls = 0
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def budget(self) -> TokenBudget | None:
        return None  # sub-batches are a fixed number of items; the Runner sizes the batches

    def load(self) -> None:
        self._loaded = True  # imported already (a bad --job fails before any work)

    def encode_iter(self, texts: Sequence[str]) -> Iterator[tuple[list[int], list[Any]]]:
        for start in range(0, len(texts), self.call_items):
            chunk = texts[start : start + self.call_items]
            items = [json.loads(text) for text in chunk]
            results = self._call(items)
            yield list(range(start, start + len(chunk))), results

    def _call(self, items: list[Any]) -> list[Any]:
        """The function's results for ``items``; a raising call is split in halves down to single items."""
        self.calls += 1
        try:
            results = self.fn(items)
        except MemoryError:
            raise
        except (Exception, SystemExit) as exc:  # the user's bug (an exit() too) costs its items, not the run
            if len(items) == 1:
                return [Failed(_one_line(exc))]
            half = math.ceil(len(items) / 2)
            return self._call(items[:half]) + self._call(items[half:])
        if not isinstance(results, (list, tuple)):
            raise WrongLength(
                f"job function {self.name} returned a {type(results).__name__} for {len(items)} items; "
                "it must return a list with one result per item, in order"
            )
        if len(results) != len(items):
            raise WrongLength(
                f"job function {self.name} returned {len(results)} results for {len(items)} items; "
                "it must return one result per item, in order"
            )
        results = list(results)  # ours: each result is replaced by its text as it is encoded
        for i, result in enumerate(results):
            results[i] = _encoded(result)
            del result
        return results

    def clear_caches(self) -> list[str]:
        return run_hooks(unloading=False)

    def unload(self) -> None:
        run_hooks(unloading=True)
        self._loaded = False


def _encoded(result: Any) -> Encoded | Failed:
    """The result as the JSON text the results file holds (the one encode), else the item's failure."""
    try:
        return Encoded(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested deeper than JSON goes
        return Failed(f"result is not JSON-serialisable: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0][:500]}" if text else exc.__class__.__name__
