"""Security promises: private files, no code from data, no listener, no signal without consent."""

from __future__ import annotations

import ast
import stat
from pathlib import Path

import psutil

from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor
from memtui.runner import Runner
from memtui.trace import RunTrace
from tests.support.inputs import write_input
from tests.support.executors import FakeExecutor

PACKAGE = Path(__file__).resolve().parents[1] / "memtui"
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "shelve", "marshal", "socket", "socketserver", "http.server"}


def python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_code_is_unpickled_or_evaluated_and_no_socket_is_opened():
    offenders = []
    for path in python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                offenders.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
            if isinstance(node, ast.Import):
                offenders += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                              if a.name in FORBIDDEN_MODULES]
            if isinstance(node, ast.ImportFrom) and node.module in FORBIDDEN_MODULES:
                offenders.append(f"{path.name}:{node.lineno} imports from {node.module}")
    assert len(python_files()) > 10
    assert not offenders, offenders


def test_a_run_creates_private_files_and_listens_on_nothing(tmp_path):
    cache = tmp_path / "private" / "cache.sqlite"
    job = CacheJob(write_input(tmp_path / "in.jsonl", domains=3, per_domain=9), cache, FakeExecutor(delay_s=0.01), model_id="t")
    seen_listeners = []

    def look(_event=None):
        seen_listeners.extend(c for c in psutil.Process().net_connections(kind="all") if c.status == psutil.CONN_LISTEN)

    runner = Runner(job, MemoryMonitor(MemoryConfig()), trace=RunTrace(cache.with_name("cache.sqlite.trace")))
    runner.monitor.add_cleanup_listener(look)
    runner.request_cleanup()
    report = runner.run()
    look()
    assert report["status"] == "success"
    assert not seen_listeners
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    created = [p for p in cache.parent.iterdir()]
    assert cache in created and cache.with_name("cache.sqlite.trace") in created
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
