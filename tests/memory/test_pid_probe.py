"""PidProbe on real child processes: RSS, children, USS/PSS, gone and access-denied errors."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from memtui.memory.pid_probe import PidProbe, ProcessGone, descendants
from memtui.memory.units import MB

#: Allocates N MB (touched page by page) per "alloc N" line, optionally in a forked worker; answers "ok".
CHILD = textwrap.dedent("""
    import os, sys
    blocks = []
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "alloc":
            b = bytearray(int(arg[0]) << 20)
            for i in range(0, len(b), 4096):
                b[i] = 1
            blocks.append(b)
        elif cmd == "fork":
            done_r, done_w = os.pipe()
            if os.fork() == 0:
                b = bytearray(int(arg[0]) << 20)
                for i in range(0, len(b), 4096):
                    b[i] = 1
                os.write(done_w, b"1")
                os.read(0, 1)  # stays until the parent's stdin closes
                os._exit(0)
            os.read(done_r, 1)
        print("ok", flush=True)
""")


class Child:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid

    def step(self, line: str, timeout: float = 10.0) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"child did not answer {line!r} within {timeout}s"
        assert self.proc.stdout.readline().strip() == "ok"

    def kill(self) -> None:
        """Continue (in case a test stopped it) and kill the child and its workers."""
        try:
            parent = psutil.Process(self.pid)
            procs = [*parent.children(recursive=True), parent]
        except psutil.Error:
            procs = []
        for proc in procs:
            try:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            except psutil.Error:
                pass
        self.proc.wait(timeout=10)


@pytest.fixture
def child():
    c = Child()
    c.step("alloc 0")  # interpreter up before the test measures anything
    try:
        yield c
    finally:
        c.kill()


def statm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_follows_a_child_allocating(child):
    probe = PidProbe(child.pid)
    before = probe.sample()
    child.step("alloc 60")
    after = probe.sample()
    assert after.rss - before.rss >= 55 * MB
    assert abs(after.rss - statm_rss(child.pid)) < 2 * MB
    assert after.processes == 1 and after.uss is None and after.status in ("sleeping", "running")
    assert probe.rss_bytes() == pytest.approx(after.rss, abs=2 * MB)  # the core's Probe protocol
    assert "python" in probe.name and "-c" in probe.cmdline


def test_detail_reads_uss_and_pss_and_times_it(child):
    child.step("alloc 40")
    sample = PidProbe(child.pid).sample(detail=True)
    assert sample.uss is not None and sample.pss is not None
    assert 40 * MB <= sample.uss <= sample.rss
    assert sample.detail_cost_s is not None and sample.detail_cost_s > 0
    assert not sample.detail_denied


def test_children_are_added_in(child):
    child.step("fork 50")
    alone = PidProbe(child.pid).sample()
    tree = PidProbe(child.pid, children=True).sample()
    assert tree.processes == 2
    assert tree.rss - alone.rss >= 45 * MB
    kid = psutil.Process(child.pid).children()[0].pid
    assert [p.pid for p in PidProbe(child.pid, children=True).processes()] == [child.pid, kid]


def test_descendants_walks_the_tree_and_survives_cycles():
    ppids = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 0: 0}
    assert descendants(10, ppids) == [11, 12, 13]
    assert descendants(13, ppids) == []
    assert set(descendants(0, ppids)) == {1, 10, 11, 12, 13, 20}


def test_a_pid_that_does_not_exist_raises_gone():
    with pytest.raises(ProcessGone, match="no process with pid 999999"):
        PidProbe(999999)


def test_a_child_that_exits_is_gone_as_zombie_and_once_reaped(child):
    probe = PidProbe(child.pid)
    probe.sample()
    child.proc.stdin.close()  # the child's loop ends: it exits, unreaped
    _wait_zombie(child.pid)
    with pytest.raises(ProcessGone, match=rf"pid {child.pid} exited \(zombie"):
        probe.sample()
    child.proc.wait(timeout=10)
    with pytest.raises(ProcessGone, match=rf"pid {child.pid} exited"):
        probe.sample()


def _wait_zombie(pid: int, timeout: float = 10.0) -> None:
    proc = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while proc.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "child did not exit"
        time.sleep(0.01)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to probe as another user")
def test_another_users_process_gives_rss_but_denies_uss(child):
    """As nobody, a root process's statm is readable but its smaps_rollup is not."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        try:
            os.setuid(65534)
            s = PidProbe(child.pid).sample(detail=True)
            os.write(write_end, f"{s.rss > 0} {s.uss} {s.detail_denied}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        answer = fh.read()
    os.waitpid(pid, 0)
    assert answer.split() == ["True", "None", "True"]
