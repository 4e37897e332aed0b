"""A real Runner on a real job and SQLite file, its memory a fake process inside a fake cgroup: when the
headroom to the cgroup's limit falls below one batch's measured cost, the run says so once (both faces' log),
says when it is back, carries the headroom in its snapshots (and on the wire), and reports the lowest seen."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from memtui import wire
from memtui.events import Notice
from memtui.faces.headless import HeadlessFace
from memtui.faces.job import progress_line
from memtui.jobs.cache import CacheJob
from memtui.memory.config import MemoryConfig
from memtui.memory.headroom import HeadroomWatch
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.system import SystemReader
from memtui.memory.units import GB, MB
from memtui.runner import Runner
from tests.memory.test_system import make_v1_cgroup, meminfo, v2_group, write
from tests.support.executors import FakeExecutor
from tests.support.fakes import FakeClock, FakeMemory
from tests.support.inputs import write_input

LIMIT = 2 * GB
ROOM_LEFT = 30 * MB  # what a neighbour in the same cgroup leaves the job: below one sub-batch's 50MB


class CgroupRun:
    """The job's RSS grows 50MB per sub-batch (its measured cost); the cgroup holds it and, for a while, a
    neighbour that leaves it 30MB: from sub-batch HOG_FROM for HOG_HOLD_S of the (fake) clock."""

    HOG_FROM, HOG_HOLD_S = 6, 20.0

    def __init__(self, tmp_path) -> None:
        self.proc, self.root = tmp_path / "proc", tmp_path / "cgroup"
        write(self.proc / "self" / "cgroup", "0::/job\n")
        write(self.proc / "meminfo", meminfo(16384, 12000))
        self.clock = FakeClock(0.0)
        self.memory = FakeMemory(base=1 * GB, per_step=50 * MB)
        self.hog = 0
        self.hog_since: float | None = None
        self.sub_batches_beside_the_hog = 0
        self._charge()
        config = MemoryConfig(warning_memory_gb=8.0, max_memory_gb=10.0, sample_interval_s=3600.0)
        self.monitor = MemoryMonitor(config, probe=self.memory, clock=self.clock)
        executor = FakeExecutor(sub_batch=2, on_sub_batch=self._sub_batch)
        source = write_input(tmp_path / "in.jsonl", 4, 9)
        job = CacheJob(source, tmp_path / "cache.sqlite", executor, model_id="hash-test")
        reader = SystemReader(self.proc, self.root, getrlimit=None)
        self.runner = Runner(job, self.monitor, clock=self.clock, headroom=HeadroomWatch(reader), sleep=self._sleep)

    def _charge(self) -> None:
        if self.hog_since is not None and self.clock() - self.hog_since >= self.HOG_HOLD_S:
            self.hog = 0  # the neighbour leaves
        v2_group(self.root / "job", current=self.memory.rss_bytes() + self.hog, max_=str(LIMIT), inactive=0)

    def _sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
        self._charge()

    def _sub_batch(self, n: int) -> None:
        if self.hog:
            self.sub_batches_beside_the_hog += 1
        self.memory.step()
        self.clock.advance(1.0)
        if n == self.HOG_FROM:
            self.hog_since = self.clock()
            self.hog = LIMIT - self.memory.rss_bytes() - ROOM_LEFT
        self._charge()


def headroom_notices(events) -> list[tuple[str, str]]:
    return [(e.level, e.message) for e in events if isinstance(e, Notice) and "Memory headroom" in e.message]


def test_low_headroom_is_said_once_brakes_and_is_reported(tmp_path):
    run = CgroupRun(tmp_path)
    events = run.runner.subscribe()
    report = run.runner.run()
    assert report.status == "success"
    notices = headroom_notices(events.drain())
    assert [level for level, _ in notices] == ["warning", "info"]
    assert "is below one batch's measured cost (0.05GB)" in notices[0][1]
    assert "to cgroup v2 /job" in notices[0][1] and "holding batches" in notices[0][1]
    assert notices[1][1].startswith("✅ Memory headroom back to ")
    # the brake: no sub-batch ran beside the neighbour, so the job never went past the limit
    assert run.sub_batches_beside_the_hog == 0
    assert report.lowest_headroom_gb == round(ROOM_LEFT / GB, 3)
    assert report.lowest_headroom_binds == "cgroup v2 /job"
    assert report.batch_cost_gb == round(50 * MB / GB, 3)
    assert report.headroom_warnings == 1
    assert report.cleanups >= 2, "the brake's wait cleaned up"
    assert any(line.startswith("Lowest headroom 0.03GB to cgroup v2 /job") for line in report.summary_lines())
    assert report.to_dict()["lowest_headroom_binds"] == "cgroup v2 /job"

    snap = run.runner.snapshot()
    h = snap.headroom
    assert h is not None and not h.low
    assert h.bytes == LIMIT - run.memory.rss_bytes()
    assert (h.cgroup, h.cgroup_limit_bytes, h.available_bytes) == ("cgroup v2 /job", LIMIT, 12000 * MB)
    assert wire.loads(wire.dumps("snapshot", snap)) == ("snapshot", snap)  # attached viewers and attach --json


def test_headless_log_has_one_line_each_way(tmp_path):
    run = CgroupRun(tmp_path)
    err = io.StringIO()
    HeadlessFace(run.runner, err=err, progress_every_s=3600).run()
    lines = [line for line in err.getvalue().splitlines() if "Memory headroom" in line]
    assert len(lines) == 2
    assert lines[0].startswith("WARNING:memtui:⚠️ Memory headroom ")
    assert lines[1].startswith("INFO:memtui:✅ Memory headroom back to ")


def test_progress_line_names_the_headroom(tmp_path):
    run = CgroupRun(tmp_path)
    run.runner.run()
    line = progress_line(run.runner.snapshot())
    rss = run.memory.rss_bytes()
    assert f"peak {rss / GB:.2f}GB · headroom {(LIMIT - rss) / GB:.2f}GB to cgroup v2 /job · breaker" in line


def test_a_neighbour_that_never_leaves_ends_the_run_with_the_reason(tmp_path):
    """The brake cannot deadlock: the open breaker's give-up rules end the run (exit 1), all committed kept."""
    run = CgroupRun(tmp_path)
    run.HOG_HOLD_S = float("inf")
    report = run.runner.run()
    assert (report.status, report.exit_code) == ("aborted", 1)
    assert "Memory headroom stays at 0.03GB to cgroup v2 /job after cleanups" in (report.error or report.reason)
    assert run.sub_batches_beside_the_hog == 0
    assert report.items > 0 and report.unprocessed_domains > 0


def test_a_runner_without_a_watch_reads_nothing(tmp_path):
    run = CgroupRun(tmp_path)
    run.runner.headroom = None
    report = run.runner.run()
    assert run.runner.snapshot().headroom is None
    assert "lowest_headroom_gb" not in report.to_dict()
    assert "headroom" not in progress_line(run.runner.snapshot())
    assert report.status == "success"


# -- for real: a v1 memory cgroup, real RSS, real allocations ------------------------------

REAL_CHILD = textwrap.dedent(
    """
    import json, subprocess, sys
    from pathlib import Path
    from memtui.events import Notice
    from memtui.jobs.cache import CacheJob
    from memtui.memory.config import MemoryConfig
    from memtui.memory.headroom import HeadroomWatch
    from memtui.memory.monitor import MemoryMonitor
    from memtui.memory.system import SystemReader
    from memtui.runner import Runner
    from tests.support.executors import FakeExecutor
    from tests.support.inputs import write_input

    MB = 1 << 20
    COST, NEIGHBOUR_AT = 80 * MB, 5

    NEIGHBOUR = (
        "import sys; b = bytearray(int(sys.argv[1])); b[::4096] = b'x' * len(b[::4096]); "
        "print('ready', flush=True); sys.stdin.read()"
    )

    class Allocating(FakeExecutor):
        '''Each sub-batch allocates and frees 80MB (a sampler sees the peak); after sub-batch 5 a
        neighbour process in the same cgroup holds all but 30MB of its room until the run's brake
        cleans up (the neighbour is asked to leave by a cleanup, so no sub-batch can run beside it).'''

        monitor = None
        neighbour = None
        beside_the_neighbour = 0

        def leave(self):
            if self.neighbour is not None:
                self.neighbour.communicate("")
                self.neighbour = None

        def encode_iter(self, texts):
            for indices, vectors in super().encode_iter(texts):
                if self.neighbour is not None:
                    self.beside_the_neighbour += 1
                block = bytearray(COST)
                block[::4096] = b"x" * len(block[::4096])
                self.monitor.sample()
                del block
                if self.sub_batches == NEIGHBOUR_AT:
                    room = SystemReader(getrlimit=None).read().binding_cgroup().headroom
                    self.neighbour = subprocess.Popen(
                        [sys.executable, "-c", NEIGHBOUR, str(room - 30 * MB)],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                    )
                    assert self.neighbour.stdout.readline().strip() == "ready"
                yield indices, vectors

    tmp = Path(sys.argv[1])
    executor = Allocating(sub_batch=1)
    monitor = MemoryMonitor(MemoryConfig(warning_memory_gb=8.0, max_memory_gb=10.0, sample_interval_s=3600.0))
    executor.monitor = monitor
    job = CacheJob(write_input(tmp / "in.jsonl", 3, 4), tmp / "cache.sqlite", executor, model_id="hash-test")
    watch = HeadroomWatch(SystemReader(getrlimit=None), every_s=0.0)
    runner = Runner(job, monitor, headroom=watch)
    monitor.cleaner.register("the neighbour", executor.leave)
    events = runner.subscribe()
    report = runner.run()
    executor.leave()
    notices = [(e.level, e.message) for e in events.drain() if isinstance(e, Notice) and "headroom" in e.message]
    print(json.dumps({"report": report.to_dict(), "notices": notices, "beside": executor.beside_the_neighbour}))
    """
)


def test_real_cgroup_a_neighbour_leaving_less_than_a_batch_is_said(tmp_path):
    """Real RSS growth (80MB a sub-batch) measured as the batch's cost; a neighbour process in the same
    v1 cgroup leaves 30MB; the kernel's own accounting makes the headroom, the run says it once each way and
    holds its sub-batches until the neighbour leaves (at the brake's first cleanup)."""
    folder = make_v1_cgroup(limit=400 * MB)
    try:
        done = subprocess.run(
            [sys.executable, "-c", REAL_CHILD, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=lambda: (folder / "cgroup.procs").write_text(str(os.getpid())),
            cwd=Path(__file__).resolve().parents[1],
        )
        assert done.returncode == 0, done.stderr[-2000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        failures = int((folder / "memory.failcnt").read_text())
    finally:
        folder.rmdir()
    report, notices = out["report"], out["notices"]
    assert report["status"] == "success"
    assert out["beside"] == 0, "the brake held every sub-batch while the neighbour was there"
    assert [level for level, _ in notices] == ["warning", "info"], notices
    assert f"to cgroup v1 /{folder.name} is below one batch's measured cost" in notices[0][1]
    assert report["lowest_headroom_binds"] == f"cgroup v1 /{folder.name}"
    assert 80 * MB / GB <= report["batch_cost_gb"] < 120 * MB / GB
    assert report["lowest_headroom_gb"] < report["batch_cost_gb"]
    assert report["headroom_warnings"] == 1
    assert failures == 0, "the cgroup hit its limit: the test's neighbour was too big"
