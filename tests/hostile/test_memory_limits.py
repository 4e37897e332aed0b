"""Never OOM-killed where the limit is knowable: a real memory cgroup, a real neighbour, real allocations.

A job whose breaker level (--max-memory 8GB) is far above its cgroup's limit runs beside a neighbour
process in the same cgroup that takes all but a sliver of the room. The job sets its own oom_score_adj
to 1000 so the kernel's choice is certain (the neighbour is bigger: left alone, the kernel would kill
it instead, and lowering the neighbour's score needs CAP_SYS_RESOURCE, which this sandbox lacks).
Each batch allocates and touches more than that sliver. Without the brake the kernel's OOM killer
ends the job (SIGKILL, exit 137: the control case, which shows the scene is lethal); with the headroom
brake the job waits, with cleanups, and completes when the neighbour leaves, or ends cleanly with
exit 1 and the reason when it never does. The kernel's own counters (v1 ``memory.failcnt`` and
``oom_control``'s ``oom_kill``; v2 ``memory.events``) must stay at 0.

Real cgroups need root and a writable memory hierarchy: v1 at /sys/fs/cgroup/memory, or v2 (the unified
mount at /sys/fs/cgroup or /sys/fs/cgroup/unified with the memory controller). Elsewhere these skip,
saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memtui.memory.units import MB
from tests.support.cli import REPO, memtui_env

ROOT = Path("/sys/fs/cgroup")
LIMIT = 320 * MB


@dataclass(frozen=True)
class Cgroup:
    folder: Path
    version: int

    def join(self) -> None:
        """Move the calling process in (a child's preexec_fn: all it allocates is charged here)."""
        (self.folder / "cgroup.procs").write_text(str(os.getpid()))

    def failures(self) -> int:
        """Times the cgroup's usage hit its limit (v1 failcnt; v2 memory.events max)."""
        if self.version == 1:
            return int((self.folder / "memory.failcnt").read_text())
        return self._events().get("max", 0)

    def oom_kills(self) -> int:
        if self.version == 1:
            fields = dict(line.split() for line in (self.folder / "memory.oom_control").read_text().splitlines())
            if "oom_kill" not in fields:
                pytest.skip("this kernel's v1 memory.oom_control has no oom_kill counter (before 4.13)")
            return int(fields["oom_kill"])
        return self._events().get("oom_kill", 0)

    def _events(self) -> dict[str, int]:
        lines = (self.folder / "memory.events").read_text().splitlines()
        return {key: int(value) for key, value in (line.split() for line in lines)}


def _v2_mount() -> Path | None:
    for mount in (ROOT, ROOT / "unified"):
        controllers = mount / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            return mount
    return None


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[Cgroup]:
    """A new memory cgroup with ``limit`` and no swap, removed after; skips (saying why) where none can be made."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root can make a memory cgroup here")
    name = f"memtui-hostile-{uuid.uuid4().hex[:8]}"
    v2 = _v2_mount()
    if v2 is not None:
        folder, version, files = v2 / name, 2, {"memory.max": str(limit), "memory.swap.max": "0"}
    elif (ROOT / "memory" / "memory.limit_in_bytes").exists():
        folder, version, files = ROOT / "memory" / name, 1, {"memory.limit_in_bytes": str(limit)}
    else:
        pytest.skip("no memory cgroup hierarchy (v1 at /sys/fs/cgroup/memory, or v2 with the memory controller)")
    try:
        folder.mkdir()
        for file, value in files.items():
            with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to turn off
                (folder / file).write_text(value)
    except OSError as exc:
        with contextlib.suppress(OSError):
            folder.rmdir()
        pytest.skip(f"cannot create a memory cgroup at {folder} ({exc.strerror}): needs a writable cgroupfs")
    try:
        yield Cgroup(folder, version)
    finally:
        for _ in range(100):  # the last process may take a moment to leave the cgroup after it is reaped
            try:
                folder.rmdir()
                break
            except OSError:
                os.sched_yield()


#: The job: SmartBatchProcessor with real allocations (deterministic, unlike a model's), its breaker at
#: 8GB (above the cgroup), each batch 96MB allocated and touched. After batch 3 a neighbour in the same
#: cgroup (oom_score_adj back to 0: the job's 1000 is the kernel's pick) takes all but 24MB of the room.
#: argv: brake|none, leaves|stays.
JOB = textwrap.dedent(
    """
    import json, logging, subprocess, sys
    from memtui.memory import MemoryConfig, MemoryMonitor, SmartBatchProcessor
    from memtui.memory.headroom import HeadroomWatch
    from memtui.memory.system import SystemReader

    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")  # if the cgroup runs out, the kernel kills this job, not its neighbour
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    MB = 1 << 20
    COST, LEAVE = 96 * MB, 24 * MB
    brake, leaves = sys.argv[1] == "brake", sys.argv[2] == "leaves"
    NEIGHBOUR = (
        "import sys; f = open('/proc/self/oom_score_adj', 'w'); f.write('0'); f.close(); "
        "b = bytearray(int(sys.argv[1])); b[::4096] = b'x' * len(b[::4096]); "
        "print('ready', flush=True); sys.stdin.read()"
    )
    neighbour = None
    batches = 0

    def leave():
        global neighbour
        if neighbour is not None:
            neighbour.communicate("")
            neighbour = None

    def work(batch):
        global neighbour, batches
        block = bytearray(COST)
        block[::4096] = b"x" * len(block[::4096])
        monitor.sample()  # the peak, inside the batch
        del block
        batches += 1
        if batches == 3:
            room = SystemReader(getrlimit=None).read().binding_cgroup().headroom
            neighbour = subprocess.Popen(
                [sys.executable, "-c", NEIGHBOUR, str(room - LEAVE)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            assert neighbour.stdout.readline().strip() == "ready"
        return len(batch)

    config = MemoryConfig(
        warning_memory_gb=6.0, max_memory_gb=8.0, batch_size_max=2, batch_size_min=1,
        sample_interval_s=0.05, breaker_timeout_s=10.0, backoff_max_s=1.0,
    )
    monitor = MemoryMonitor(config)
    if leaves:
        monitor.cleaner.register("the neighbour leaves", leave)
    watch = HeadroomWatch(SystemReader(getrlimit=None), every_s=0.0) if brake else None
    monitor.start()
    try:
        result = SmartBatchProcessor(monitor, headroom=watch).process_with_memory_awareness(range(16), work)
    finally:
        monitor.stop()
        leave()
    print(json.dumps({k: result[k] for k in ("status", "reason", "processed", "cleanups")}), flush=True)
    sys.exit(0 if result["status"] == "success" else 1)
    """
)


def run_job(cgroup: Cgroup, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", JOB, *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cgroup.join,
        cwd=REPO,
        env=memtui_env(),
    )


def test_without_the_brake_the_kernel_kills_the_job():
    """The control: the scene is lethal, so the two tests below could fail."""
    with memory_cgroup(LIMIT) as cgroup:
        done = run_job(cgroup, "none", "stays")
        kills = cgroup.oom_kills()
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr[-2000:])
    assert kills >= 1


def test_the_brake_waits_and_completes_when_the_neighbour_leaves():
    with memory_cgroup(LIMIT) as cgroup:
        done = run_job(cgroup, "brake", "leaves")
        kills, failures = cgroup.oom_kills(), cgroup.failures()
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == "success" and result["processed"] == 16
    assert result["cleanups"] >= 1, "the neighbour left at the brake's cleanup: the job waited for it"
    assert "below one batch's measured cost" in done.stderr and "Memory headroom back" in done.stderr
    assert (kills, failures) == (0, 0), "the cgroup never reached its limit"


def test_the_brake_ends_the_job_cleanly_when_the_neighbour_never_leaves():
    with memory_cgroup(LIMIT) as cgroup:
        done = run_job(cgroup, "brake", "stays")
        kills, failures = cgroup.oom_kills(), cgroup.failures()
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == "aborted" and 0 < result["processed"] < 16
    assert "Memory headroom stayed below one batch's cost for 10s" in result["reason"]
    assert "Traceback" not in done.stderr
    assert (kills, failures) == (0, 0), "the cgroup never reached its limit"
