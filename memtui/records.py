"""The records the jobs read and the cache stores: a response, and a domain's group of them.

Their own module, so the cache (memtui.embed) needs nothing of the input reader
(memtui.jobs.input) to know what it stores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Response:
    id: str
    domain: str
    model: str
    prompt_type: str
    text: str
    line: int


@dataclass(frozen=True)
class DomainGroup:
    domain: str
    responses: tuple[Response, ...]

    @property
    def name(self) -> str:
        """What the engine calls a unit of work (the runner knows units only by name)."""
        return self.domain
