"""Fixtures for the TUI tests: real Runners (real CacheJob, SQLite, MemoryMonitor) around a fast fake executor."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memtui.jobs.cache import CacheJob
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.runner import Runner
from tests.support.executors import FakeExecutor
from tests.support.inputs import write_input


@dataclass
class Rig:
    runner: Runner
    executor: FakeExecutor
    cache: Path
    input: Path

    def committed(self) -> tuple[int, int]:
        """(complete domains, their responses) in the SQLite file, read through a separate connection.

        A stop mid-batch may also commit some responses of an unfinished domain (their vectors are
        kept for the rerun); those are not counted here.
        """
        con = sqlite3.connect(self.cache)
        try:
            return (
                con.execute("SELECT COUNT(*) FROM domains").fetchone()[0],
                con.execute("SELECT COUNT(*) FROM responses WHERE domain IN (SELECT domain FROM domains)").fetchone()[
                    0
                ],
            )
        finally:
            con.close()


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(
        *,
        domains: int = 8,
        per_domain: int = 4,
        sub_batch: int = 2,
        delay_s: float = 0.0,
        config: MemoryConfig | None = None,
        monitor: MemoryMonitor | None = None,
        executor: FakeExecutor | None = None,
        clock: Callable[[], float] | None = None,
        input_path: Path | None = None,
        cache_path: Path | None = None,
    ) -> Rig:
        source = input_path or write_input(tmp_path / "responses.jsonl", domains, per_domain)
        cache = cache_path or tmp_path / "cache.sqlite"
        executor = executor or FakeExecutor(sub_batch=sub_batch, delay_s=delay_s)
        monitor = monitor or MemoryMonitor(config or MemoryConfig())
        job = CacheJob(source, cache, executor, model_id="fake-model")
        runner = Runner(job, monitor, clock=clock) if clock else Runner(job, monitor)
        # A held executor lets go once the runner is asked to stop, so no test can hang at teardown.
        executor.stop_check = lambda: runner.snapshot().stopping
        runner.open()
        rig = Rig(runner, executor, cache, source)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.runner.stop()
        rig.executor.release()


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Let the app run until ``predicate`` holds (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await pilot.pause(0.02)
    await asyncio.sleep(0)


def screen_lines(app) -> list[str]:
    """What the terminal shows, line by line (the app's current screen, dialogs included)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]
