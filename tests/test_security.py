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
from tests.support.executors import FakeExecutor
from tests.support.inputs import write_input

PACKAGE = Path(__file__).resolve().parents[1] / "memtui"
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "shelve", "marshal", "socket", "socketserver", "http.server"}
#: The only modules that may import ``socket``: the attach server and client (Unix sockets only, checked below).
SOCKET_MODULES = {PACKAGE / "attach" / "server.py", PACKAGE / "attach" / "client.py"}
#: ...and the probe of a ``--scheduler`` address before Dask is handed it: a client, never a listener (below).
SCHEDULER_PROBE = PACKAGE / "cluster" / "address.py"


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
                offenders += [
                    f"{path.name}:{node.lineno} imports {a.name}"
                    for a in node.names
                    if a.name in FORBIDDEN_MODULES
                    and not (a.name == "socket" and path in SOCKET_MODULES | {SCHEDULER_PROBE})
                ]
            if isinstance(node, ast.ImportFrom) and node.module in FORBIDDEN_MODULES:
                offenders.append(f"{path.name}:{node.lineno} imports from {node.module}")
    assert len(python_files()) > 10
    assert not offenders, offenders


def test_the_attach_modules_open_unix_sockets_only():
    """The attach server and client: AF_UNIX stream sockets, never AF_INET/AF_INET6, nothing else from socket."""
    allowed = {"socket", "AF_UNIX", "SOCK_STREAM", "SOL_SOCKET", "SO_PEERCRED", "SHUT_RDWR"}
    for path in SOCKET_MODULES:
        tree = ast.parse(path.read_text(), filename=str(path))
        used = {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "socket"
        }
        assert "AF_UNIX" in used, path
        assert not used - allowed, f"{path.name} uses socket.{sorted(used - allowed)}"
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "socket"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "socket"
        ]
        assert calls, path
        for node in calls:
            assert [ast.unparse(a) for a in node.args[:1]] == ["socket.AF_UNIX"], ast.unparse(node)
        assert "AF_INET" not in path.read_text()


def test_a_run_creates_private_files_and_listens_on_nothing(tmp_path):
    cache = tmp_path / "private" / "cache.sqlite"
    job = CacheJob(
        write_input(tmp_path / "in.jsonl", domains=3, per_domain=9), cache, FakeExecutor(delay_s=0.01), model_id="t"
    )
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


def test_the_scheduler_probe_connects_and_never_listens():
    """cluster/address.py checks that a --scheduler address speaks Dask: it connects out; it never binds,
    listens or accepts (so it opens no port on the host)."""
    tree = ast.parse(SCHEDULER_PROBE.read_text(), filename=str(SCHEDULER_PROBE))
    methods = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert "connect" in methods or "connect_ex" in methods
    assert not methods & {"bind", "listen", "accept", "create_server"}, sorted(methods & {"bind", "listen", "accept"})
