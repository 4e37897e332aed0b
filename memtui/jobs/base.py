"""The contract between the Runner and an embedding job.

The Runner owns the loop, the memory decisions and the commands; the job knows
its data: which units (domains) remain, which texts of a batch still need
vectors, and how to commit a batch's results. The executor (texts in, vectors
out) is separate so the same job could one day hand its texts to worker
processes instead of an in-process model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from memtui.jobs.input import BadLine
from memtui.records import DomainPiece, Response


@dataclass(frozen=True)
class JobTotals:
    units: int  # domains in scope
    items: int  # responses in scope
    units_done: int = 0  # already complete in the cache (resumed)
    items_done: int = 0
    bad_lines: int = 0
    bad_line_details: tuple[BadLine, ...] = ()  # the first bad lines (line number, reason)


@dataclass
class Work:
    """One admitted batch: its domains, their responses' keys, and the texts still to embed."""

    units: tuple[DomainPiece, ...]
    keys: list[bytes]  # one per response, in order
    to_embed: list[tuple[bytes, str]]  # distinct (key, text) pairs missing from the cache
    #: each key's output: a vector (np.ndarray) for the embedding jobs, any JSON value for a user's job
    vectors: dict[bytes, Any] = field(default_factory=dict)

    @property
    def responses(self) -> Iterator[Response]:
        for unit in self.units:
            yield from unit.responses

    @property
    def items(self) -> int:
        return len(self.keys)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u.domain for u in self.units))  # a domain's pieces: named once


@dataclass(frozen=True)
class CommitResult:
    completed: tuple[str, ...]  # domains now complete in the cache
    items_completed: int  # their responses
    vectors_written: int
    #: (domain, its responses with a vector in the cache now, its responses) for each domain of the batch
    stored: tuple[tuple[str, int, int], ...] = ()
    #: indices (in Work.units) of the units whose every response now has its vector; None: judge by
    #: ``completed`` names (a job whose units are whole domains)
    finished: tuple[int, ...] | None = None

    @property
    def units_completed(self) -> int:
        return len(self.completed)


class TokenBudget(Protocol):
    """An executor's adaptive sub-batch token budget (memtui.embed.budget): memory wins over speed."""

    memory_tight: bool


class Executor(Protocol):
    """Texts in, vectors out, one sub-batch at a time (so the runner can pause between them)."""

    @property
    def loaded(self) -> bool: ...

    @property
    def budget(self) -> TokenBudget | None:
        """The adaptive token budget, or None (a fixed one): the Runner makes it smallest below full admission."""
        ...

    def load(self) -> None: ...

    def encode_iter(self, texts: Sequence[str]) -> Iterator[tuple[list[int], Any]]:
        """(indices, outputs) per sub-batch: vectors (np.ndarray) for a model, results for a user's function."""
        ...

    def clear_caches(self) -> list[str]: ...

    def unload(self) -> None: ...


class Unit(Protocol):
    """What the runner knows of a unit of work (a domain, for the cache job): its name."""

    @property
    def name(self) -> str: ...


U = TypeVar("U", bound=Unit)


class EmbedJob(Protocol[U]):
    mode: str
    input_path: str
    cache_path: str
    model_id: str
    #: What makes the vectors, as the cache tags them (``torch``, ``onnx-int8/r3/avx512_vnni``); None: unknown.
    backend: str | None
    executor: Executor

    def open(self) -> JobTotals: ...

    def units(self) -> Iterator[U]: ...

    def prepare(self, units: Sequence[U]) -> Work: ...

    def commit(self, work: Work) -> CommitResult: ...

    def check_intact(self) -> None:
        """Once the work is over: the input is the file scanned, the cache is where the work went (else raise
        the MemtuiError that ends the run)."""
        ...

    def close(self) -> None: ...
