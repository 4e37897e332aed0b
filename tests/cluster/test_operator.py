"""The operator's side of a cluster run, on one real LocalCluster of 2 worker processes (shared by
these tests) with the real model: a row per worker in the snapshot, pause holding every worker
between sub-batches, thresholds and cleanups reaching every worker, a worker's breaker tripping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from memtui.cluster.engine import ClusterRunner
from memtui.cluster.plugin import PLUGIN_NAME, WATCH_NAME
from memtui.cluster.settings import dask_config, memory_limit_bytes
from memtui.embed.model import Embedder
from memtui.events import Notice
from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor
from memtui.memory.breaker import BreakerState
from memtui.memory.units import GB
from memtui.records import WorkerRow
from tests.cluster.test_cluster import _assert_complete
from tests.support.inputs import write_input

pytestmark = [pytest.mark.model, pytest.mark.slow]

CONFIG = MemoryConfig(max_memory_gb=3.0, warning_memory_gb=2.0)
#: Texts per worker sub-batch: several checkpoints per domain, on a small input.
SUB_BATCH = 4


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local cluster as ``--workers 2`` starts it (memtui's Dask settings); its scheduler's address."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(dask_config()):
        local = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit_bytes(CONFIG),
            host="127.0.0.1",
            dashboard_address=None,
        )
    try:
        yield local.scheduler_address
    finally:
        local.close()


class Run:
    """A ClusterRunner on the shared cluster, run in a thread."""

    def __init__(self, tmp_path: Path, address: str | None, domains: int, per_domain: int, **kw) -> None:
        """On the shared cluster at ``address``, or (None) on a local cluster of its own (``workers=N``)."""
        self.domains, self.per_domain, self.cache = domains, per_domain, tmp_path / "cache.sqlite"
        source = write_input(tmp_path / "in.jsonl", domains=domains, per_domain=per_domain)
        embedder = Embedder()
        job = CacheJob(source, self.cache, embedder, model_id=embedder.model_id)
        monitor = MemoryMonitor(kw.pop("config", CONFIG))
        where = {"scheduler": address} if address else {"workers": kw.pop("workers")}
        self.runner = ClusterRunner(job, monitor, model=embedder.model_id, sub_batch_texts=SUB_BATCH, **where, **kw)
        self.result: dict = {}
        self.thread = threading.Thread(target=lambda: self.result.setdefault("report", self.runner.run()), daemon=True)

    def start(self) -> Run:
        self.thread.start()
        return self

    def rows(self) -> tuple[WorkerRow, ...]:
        return self.runner.snapshot().workers

    def wait_for(self, what: str, predicate: Callable[[tuple[WorkerRow, ...]], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(rows := self.rows()):
            assert self.thread.is_alive(), f"the run ended before {what}: {self.result.get('report')}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {rows}"
            time.sleep(0.2)

    def finish(self, timeout: float = 240):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not finish"
        report = self.result["report"]
        assert report.status == "success", report.summary_lines()
        _assert_complete(self.cache, self.domains, self.per_domain)
        return report


def test_the_snapshot_has_a_live_row_per_worker_and_the_report_its_numbers(tmp_path, cluster):
    run = Run(tmp_path, cluster, domains=4, per_domain=12).start()
    run.wait_for("both workers embedding", lambda rows: len(rows) == 2 and all(w.sub_batches for w in rows))
    rows = run.rows()
    assert {w.address for w in rows} <= set(run.runner._seen)
    for w in rows:
        assert w.rss_bytes > 0 and w.peak_bytes >= w.rss_bytes and w.model_loaded
        assert w.history and max(w.history) <= w.peak_bytes  # per-second peaks for the sparkline
        assert w.breaker is BreakerState.CLOSED and w.max_bytes == CONFIG.max_bytes
        assert w.batch_size == SUB_BATCH and not w.paused and not w.lost
    report = run.finish()
    assert report.workers is not None and len(report.workers) == 2
    assert sum(w["items_done"] for w in report.workers) == 4 * 12
    assert sum(w["sub_batches"] for w in report.workers) >= 4 * 12 // SUB_BATCH
    assert all(w["peak_memory_gb"] > 0 and w["model_loads"] == 1 for w in report.workers)
    # a cluster memtui did not start keeps neither its plugins nor the model they hold
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        plugged = client.run(lambda dask_worker: PLUGIN_NAME in dask_worker.plugins)
        assert len(plugged) == 2 and not any(plugged.values()), plugged
        assert not client.run_on_scheduler(lambda dask_scheduler: WATCH_NAME in dask_scheduler.plugins)


def test_pause_holds_every_worker_between_sub_batches_and_resume_finishes(tmp_path, cluster):
    run = Run(tmp_path, cluster, domains=4, per_domain=24).start()
    run.wait_for("both workers embedding", lambda rows: len(rows) == 2 and all(w.sub_batches for w in rows))
    run.runner.pause()
    run.wait_for("every worker paused", lambda rows: all(w.paused for w in rows))
    # a worker holds its domain mid-way: it starts no further sub-batch (not only the client submits nothing)
    run.wait_for(
        "the workers holding their domains",
        lambda rows: all(w.activity == "paused" for w in rows if w.current_domain),
        timeout=60,
    )
    held = run.rows()
    assert any(w.current_domain for w in held), f"no worker was paused mid-domain: {held}"
    items = run.runner.snapshot().items_done
    time.sleep(4)
    assert [w.sub_batches for w in run.rows()] == [w.sub_batches for w in held], "a paused worker went on"
    assert run.runner.snapshot().items_done == items
    run.runner.resume()
    report = run.finish()
    assert all(not w["lost"] for w in report.workers)
    assert not any(w.paused for w in run.rows())


def test_thresholds_and_cleanups_reach_every_worker(tmp_path, cluster):
    run = Run(tmp_path, cluster, domains=4, per_domain=24).start()
    run.wait_for("both workers embedding", lambda rows: len(rows) == 2 and all(w.sub_batches for w in rows))
    before = {w.address: w.cleanups for w in run.rows()}
    run.runner.set_thresholds(warning="2.5GB", max="3.5GB")
    run.runner.request_cleanup()
    run.wait_for(
        "the new levels on every worker",
        lambda rows: all(w.max_bytes == int(3.5 * GB) and w.warning_bytes == int(2.5 * GB) for w in rows),
        timeout=30,
    )
    # a busy worker cleans up at its next sub-batch, in the task's thread; an idle one at once
    run.wait_for("a cleanup on every worker", lambda rows: all(w.cleanups > before[w.address] for w in rows))
    report = run.finish()
    assert all(w["max_memory_gb"] == 3.5 and w["cleanups"] >= 1 for w in report.workers)


def test_a_worker_that_joins_later_follows_the_pause_and_the_levels(tmp_path):
    run = Run(tmp_path, None, domains=4, per_domain=16, workers=1)
    run.runner.open()
    run.start()
    run.wait_for("the first worker embedding", lambda rows: len(rows) == 1 and rows[0].sub_batches > 0)
    # the local cluster speaks TLS with this run's own certificates: another client, even with TLS, is refused
    from distributed import Client
    from distributed.security import Security

    address = run.runner._cluster.scheduler_address
    assert address.startswith("tls://127.0.0.1:")
    with pytest.raises((OSError, TimeoutError)):
        Client(address, security=Security.temporary(), timeout=5)
    run.runner.set_thresholds(warning="2.5GB", max="3.5GB")
    run.runner.pause()
    run.wait_for("the first worker paused", lambda rows: rows[0].paused and rows[0].max_bytes == int(3.5 * GB))
    run.runner._cluster.scale(2)  # a worker joins the paused run
    run.wait_for(
        "the new worker following the run's orders",
        lambda rows: len(rows) == 2 and all(w.paused and w.max_bytes == int(3.5 * GB) for w in rows),
    )
    run.runner.resume()
    report = run.finish()
    assert len(report.workers) == 2 and all(w["max_memory_gb"] == 3.5 for w in report.workers)


def test_a_workers_breaker_trips_for_real_and_nothing_is_lost(tmp_path, cluster):
    import cloudpickle

    from tests.cluster import ballast

    cloudpickle.register_pickle_by_value(ballast)  # the workers need not import the tests
    try:
        # levels above a loaded worker (about 0.65GB here) and this test process; the ballast goes past them
        config = MemoryConfig(max_memory_gb=1.5, warning_memory_gb=1.3)
        run = Run(tmp_path, cluster, domains=4, per_domain=8, config=config, task=ballast.ballast_embed)
        events = run.runner.subscribe()
        report = run.start().finish()
    finally:
        cloudpickle.unregister_pickle_by_value(ballast)
    trips = sum(w["breaker_trips"] for w in report.workers)
    assert trips >= len(ballast.BALLAST_DOMAINS), report.workers  # each block opened its worker's breaker
    assert sum(w["cleanups"] for w in report.workers) >= trips  # the open breaker cleaned up: the block went
    assert all(not w["lost"] for w in report.workers) and report.workers_lost == 0
    # the workers' own log lines reach the client's log (Dask events), named by worker, not their stderr
    lines = [e.message for e in events.drain() if isinstance(e, Notice)]
    opened = [line for line in lines if line.startswith("worker ") and "Circuit breaker OPEN" in line]
    assert len(opened) >= len(ballast.BALLAST_DOMAINS), lines


async def test_the_tui_shows_a_row_per_real_worker_at_80x24(tmp_path, cluster):
    from memtui.tui.app import MemtuiApp
    from memtui.tui.widgets.workers_panel import WorkersPanel
    from tests.tui.conftest import wait_for

    run = Run(tmp_path, cluster, domains=4, per_domain=8)
    app = MemtuiApp(run.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        d = app.dashboard
        await wait_for(pilot, lambda: bool(d.query(WorkersPanel)), what="the workers panel", timeout=120)
        panel = d.query_one(WorkersPanel)
        await wait_for(pilot, lambda: panel.row_count == 2, what="a row per worker", timeout=60)
        await wait_for(pilot, lambda: app.report is not None, what="the run to finish", timeout=240)
        app.tick()
        await pilot.pause()
        rows = run.runner.snapshot().workers
        assert [panel.get_row_at(i)[0].plain for i in range(2)] == [w.name for w in rows]
        assert sum(w.items_done for w in rows) == 4 * 8
        assert all(panel.get_cell(w.address, "doing").plain == "idle" for w in rows)
        assert all(panel.get_cell(w.address, "breaker").plain == "CLOSED" for w in rows)
        assert d.query_one("#body").max_scroll_y == 0
        await pilot.press("q")
    assert app.return_value["status"] == "success"
    _assert_complete(run.cache, 4, 8)


CHILD = """
import sys
from pathlib import Path
from memtui.cluster.engine import ClusterRunner
from memtui.cluster.plugin import PLUGIN_NAME, WATCH_NAME
from memtui.embed.model import Embedder
from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor
from tests.support.inputs import write_input

tmp = Path(sys.argv[1])
source = write_input(tmp / "in.jsonl", domains=2, per_domain=2)
embedder = Embedder()
job = CacheJob(source, tmp / "cache.sqlite", embedder, model_id=embedder.model_id)
runner = ClusterRunner(job, MemoryMonitor(MemoryConfig()), workers=1, model=embedder.model_id)
runner.open()  # as the CLI does, before the face starts


class Capture:  # what the TUI puts in place of sys.stderr while it runs: no file descriptor
    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def fileno(self):
        return -1


sys.stderr = Capture()
report = runner.run()
print(report.status, report.error)
"""


def test_a_local_cluster_starts_under_a_face_that_captured_stderr(tmp_path):
    """The TUI replaces sys.stderr; the local cluster's worker processes must start all the same."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.stdout.strip() == "success None", done.stdout[-2000:] + done.stderr[-2000:]
    _assert_complete(tmp_path / "cache.sqlite", 2, 2)


def test_vectors_tagged_otherwise_than_the_caches_keys_are_never_committed(tmp_path, cluster):
    """Each worker names what made its vectors (an int8 export is per instruction set, so a worker on
    another CPU makes other vectors): here the workers' torch against a cache keyed for an AVX2 int8
    export. The run ends, names both, and commits nothing."""
    source = write_input(tmp_path / "in.jsonl", domains=2, per_domain=3)
    embedder = Embedder()
    job = CacheJob(source, tmp_path / "cache.sqlite", embedder, model_id=embedder.model_id, backend="onnx-int8/r3/avx2")
    runner = ClusterRunner(
        job, MemoryMonitor(CONFIG), model=embedder.model_id, sub_batch_texts=SUB_BATCH, scheduler=cluster
    )
    report = runner.run()
    assert report.status == "aborted" and report.exit_code == 1, report.summary_lines()
    assert "makes torch vectors, this run's cache keys are onnx-int8/r3/avx2" in (report.reason or "")
    assert report.responses_committed == 0
