"""The README's picture of the dashboard at 80x24, made by the real app so it never goes stale.

The real MemtuiApp and Runner over the bundled sample's first 40 domains (a real
CacheJob and SQLite cache), frozen at a known point: the embedding is a fake
executor (no model: vectors do not show on screen), time is a fake clock the
executor moves one second per sub-batch, RSS a fake memory that grows with the
work, the limit a fixed 2 GB cgroup, and the GC log's clock a fixed time. So
every character is the same on every machine, and tests/tui/test_readme_capture.py
fails when the screen changes and the README's capture was not regenerated.

    python -m bench.capture_dashboard            # print the capture
    python -m bench.capture_dashboard --readme   # write it into README.md (its first ```text block)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from memtui.jobs.cache import CacheJob
from memtui.memory.cleanup import Cleaner
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.probe import MemoryLimit
from memtui.memory.units import GB, MB
from memtui.paths import REPO_ROOT, SAMPLE_INPUT
from memtui.runner import Runner
from memtui.tui.app import MemtuiApp
from tests.support.executors import FakeExecutor
from tests.support.fakes import FakeClock, FakeMemory

SIZE = (80, 24)
#: Sub-batches (16 texts each) done when the picture is taken: about a quarter of the 40 domains.
HOLD_AT = 24
README = REPO_ROOT / "README.md"
_BLOCK = re.compile(r"```text\n.*?\n```", re.S)


class _Frozen:
    """A real Runner on the sample's first 40 domains, held after ``HOLD_AT`` sub-batches."""

    def __init__(self, workdir: Path) -> None:
        self.clock = FakeClock(1000.0)
        self.memory = FakeMemory(base=420 * MB, per_step=6 * MB, freed_per_cleanup=20 * MB)
        config = MemoryConfig(warning_memory_gb=1.0, max_memory_gb=1.5, sample_interval_s=3600.0)
        limit = MemoryLimit(2 * GB, "cgroup memory.max (/memtui.slice)")
        self.monitor = MemoryMonitor(config, probe=self.memory, clock=self.clock, limit=limit)
        self.monitor.cleaner = Cleaner(self.memory, clock=self.clock, collect=self.memory.collect, trim=lambda: True)
        self.gate = threading.Event()
        self.executor = FakeExecutor(sub_batch=16, on_sub_batch=self._step)
        shutil.copyfile(SAMPLE_INPUT, workdir / SAMPLE_INPUT.name)
        job = CacheJob(
            Path(SAMPLE_INPUT.name),  # relative to the working folder: no machine's path on screen
            Path("cache.sqlite"),
            self.executor,
            model_id="sentence-transformers/all-MiniLM-L6-v2",
            limit_domains=40,
        )
        self.runner = Runner(job, self.monitor, clock=self.clock)
        self.executor.stop_check = lambda: self.runner.snapshot().stopping
        self.runner.open()

    def _step(self, count: int) -> None:
        self.memory.step()
        self.clock.advance(1.0)
        if count == HOLD_AT:
            self.executor.hold(self.gate)

    def release(self) -> None:
        self.executor.release()
        self.runner.stop()


async def _shoot(run: _Frozen) -> list[str]:
    app = MemtuiApp(run.runner, time_format=lambda _at: "16:27:56")
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(3000):
            if run.executor.holding.is_set():
                break
            await pilot.pause(0.02)
        else:
            raise RuntimeError("the frozen run never reached its point")
        app.tick(force_chart=True)
        await pilot.pause()
        lines = [strip.text.rstrip() for strip in app.screen._compositor.render_strips()]
        run.release()
        await pilot.pause()
    return lines


def capture() -> str:
    """The dashboard at 80x24 as text, one line per terminal row (trailing spaces dropped)."""
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="memtui-capture-") as tmp:
        os.chdir(tmp)
        try:
            run = _Frozen(Path(tmp))
            try:
                lines = asyncio.run(_shoot(run))
            finally:
                run.release()
        finally:
            os.chdir(here)
    return "\n".join(lines)


def readme_capture(text: str) -> str:
    """The README's capture: its first ```text block."""
    found = _BLOCK.search(text)
    if found is None:
        raise ValueError("README.md has no ```text block for the dashboard's capture")
    return found.group(0).removeprefix("```text\n").removesuffix("\n```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the capture into README.md")
    args = parser.parse_args()
    shot = capture()
    if not args.readme:
        print(shot)
        return
    text = README.read_text(encoding="utf-8")
    readme_capture(text)  # there is a block to replace
    README.write_text(_BLOCK.sub(lambda _m: f"```text\n{shot}\n```", text, count=1), encoding="utf-8")
    print(f"wrote the {SIZE[0]}x{SIZE[1]} capture into {README}")


if __name__ == "__main__":
    main()
