"""The cache job on real Dask clusters with the real model: a LocalCluster of 2 worker processes, a
worker killed with SIGKILL mid-run, and a scheduler and a worker started with Dask's own commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from memtui.cluster.engine import ClusterRunner
from memtui.embed.model import Embedder
from memtui.events import BatchDone
from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor
from tests.support.cli import memtui, memtui_env
from tests.support.inputs import domain_names, write_input

pytestmark = [pytest.mark.model, pytest.mark.slow]

BIN = Path(sys.executable).parent


def _runner(tmp_path: Path, domains: int, per_domain: int, workers: int = 2, **kw) -> ClusterRunner:
    source = write_input(tmp_path / "in.jsonl", domains=domains, per_domain=per_domain)
    embedder = Embedder()
    job = CacheJob(source, tmp_path / "cache.sqlite", embedder, model_id=embedder.model_id)
    monitor = MemoryMonitor(MemoryConfig(max_memory_gb=3.0, warning_memory_gb=2.0))
    return ClusterRunner(job, monitor, workers=workers, model=embedder.model_id, **kw)


def _cache_rows(path: Path) -> tuple[list[tuple[str, str, int]], int]:
    """(response id, domain, has a vector) for every response row; the domains with a summary."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT r.id, r.domain, e.key IS NOT NULL FROM responses r LEFT JOIN embeddings e ON e.key = r.key"
        ).fetchall()
        summaries = db.execute("SELECT COUNT(*) FROM domains").fetchone()[0]
    return rows, summaries


def _assert_complete(path: Path, domains: int, per_domain: int) -> None:
    rows, summaries = _cache_rows(path)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) == domains * per_domain  # every response once, no duplicates
    assert all(r[2] for r in rows)  # each with its vector
    assert {r[1] for r in rows} == set(domain_names(domains))
    assert summaries == domains


def test_local_cluster_of_two_workers_embeds_everything_once_and_exactly(tmp_path, real_embedder):
    runner = _runner(tmp_path, domains=6, per_domain=5)
    report = runner.run()
    assert report.status == "success", report.summary_lines()
    assert report.domains_done == 6 and report.items == 30
    _assert_complete(tmp_path / "cache.sqlite", 6, 5)
    # the report has every worker, and their items add up
    assert report.workers is not None and len(report.workers) == 2
    assert sum(w["items_done"] for w in report.workers) == 30
    assert all(w["peak_memory_gb"] > 0 and w["model_loads"] == 1 for w in report.workers)
    assert report.workers_lost == 0 and report.quarantined == ()
    assert "workers" in report.to_dict()
    # the same vectors a local run makes
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        text = json.loads((tmp_path / "in.jsonl").read_text().splitlines()[0])["response"]
        key = db.execute("SELECT key FROM responses WHERE id = 'site000.example-0'").fetchone()[0]
        stored = np.frombuffer(db.execute("SELECT vector FROM embeddings WHERE key = ?", (key,)).fetchone()[0], "<f4")
    np.testing.assert_allclose(stored, real_embedder.encode([text])[0], atol=1e-5)
    # a rerun resumes: nothing left to embed, no cluster work
    again = _runner(tmp_path, domains=6, per_domain=5).run()
    assert again.status == "success" and again.items_skipped == 30 and again.items_embedded == 0


def test_a_worker_killed_mid_run_loses_nothing(tmp_path):
    runner = _runner(tmp_path, domains=12, per_domain=20)
    events = runner.subscribe()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("report", runner.run()), daemon=True)
    thread.start()
    killed = None
    deadline = time.monotonic() + 240
    try:
        while killed is None and time.monotonic() < deadline and thread.is_alive():
            events.wait(timeout=1.0)
            if any(isinstance(event, BatchDone) for event in events.drain()):
                # a worker busy on a domain right now: kill its process outright
                rows = [w for w in runner.snapshot().workers if w.current_domain]
                client = runner._client
                if rows and client is not None:
                    pids = client.run(os.getpid, workers=[rows[0].address])
                    killed = next(iter(pids.values()))
                    os.kill(killed, signal.SIGKILL)
    finally:
        thread.join(timeout=300)
    assert killed is not None, "no worker was busy to kill"
    report = result["report"]
    assert report.status == "success", report.summary_lines()
    assert report.workers_lost >= 1
    assert any(w.get("lost") for w in report.workers)
    _assert_complete(tmp_path / "cache.sqlite", 12, 20)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def test_memtui_on_a_cluster_started_with_dasks_own_commands(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = memtui_env(
        DASK_DISTRIBUTED__WORKER__MEMORY__TARGET="False",
        DASK_DISTRIBUTED__WORKER__MEMORY__SPILL="False",
        DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE="0.9",
        DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE="0.95",
    )
    logs = (tmp_path / "dask.log").open("w")
    procs = [
        subprocess.Popen(
            [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=logs,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    ]
    try:
        procs.append(
            subprocess.Popen(
                [
                    BIN / "dask",
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "2",
                    "--no-dashboard",
                    "--memory-limit",
                    "3.75GB",
                ],
                stdout=logs,
                stderr=subprocess.STDOUT,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        )
        source = write_input(tmp_path / "in.jsonl", domains=6, per_domain=5)
        done = memtui(
            "run",
            "--mode",
            "cache",
            "--input",
            source,
            "--cache",
            tmp_path / "cache.sqlite",
            "--scheduler",
            address,
            "--headless",
            "--report",
            tmp_path / "report.json",
            "--max-memory",
            "3",
            "--warning-memory",
            "2",
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["status"] == "success" and report["cluster"] == address
        assert report["workers"] and sum(w["items_done"] for w in report["workers"]) == 30
        assert "tcp://127.0.0.1:" in done.stderr + done.stdout  # log lines name the worker
        _assert_complete(tmp_path / "cache.sqlite", 6, 5)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        logs.close()


def test_a_domain_that_kills_workers_twice_is_quarantined_and_named(tmp_path):
    import functools

    import cloudpickle

    from tests.cluster import deadly

    marks = tmp_path / "deaths"
    cloudpickle.register_pickle_by_value(deadly)  # the workers need not import the tests
    try:
        task = functools.partial(deadly.counted_deadly_embed, str(marks))
        report = _runner(tmp_path, domains=4, per_domain=3, task=task).run()
    finally:
        cloudpickle.unregister_pickle_by_value(deadly)
    assert report.status == "partial" and report.exit_code == 1, report.summary_lines()
    assert report.quarantined == (deadly.DEADLY,)
    # exactly two deaths: retried once after the first (not quarantined at once), never a third time
    assert len(marks.read_text().splitlines()) == 2, marks.read_text()
    assert report.unprocessed == (deadly.DEADLY,) and report.unprocessed_domains == 1
    assert report.workers_lost >= 2
    assert any(deadly.DEADLY in line for line in report.summary_lines())
    rows, summaries = _cache_rows(tmp_path / "cache.sqlite")
    assert summaries == 3 and {r[1] for r in rows} == set(domain_names(4)) - {deadly.DEADLY}


def test_stop_commits_what_is_in_flight_and_a_rerun_finishes_the_rest(tmp_path):
    runner = _runner(tmp_path, domains=10, per_domain=4, workers=1)
    events = runner.subscribe()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("report", runner.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 240
    while thread.is_alive() and time.monotonic() < deadline:
        events.wait(timeout=1.0)
        if any(isinstance(event, BatchDone) for event in events.drain()):
            runner.stop()
            break
    thread.join(timeout=300)
    report = result["report"]
    assert report.status == "interrupted" and report.exit_code == 130
    assert 1 <= report.domains_done < 10
    assert report.domains_done + report.unprocessed_domains == 10
    rows, summaries = _cache_rows(tmp_path / "cache.sqlite")
    assert summaries == report.domains_done and all(r[2] for r in rows)  # what was in flight is committed
    again = _runner(tmp_path, domains=10, per_domain=4, workers=1).run()
    assert again.status == "success" and again.items_skipped == 4 * report.domains_done
    _assert_complete(tmp_path / "cache.sqlite", 10, 4)
