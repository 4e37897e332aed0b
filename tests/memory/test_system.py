"""The system's, the cgroup's and the address space's memory, read from fake /proc and /sys trees (v1, v2,
hybrid, a cgroup namespace), and once from a real v1 memory cgroup with a child process inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from memtui.memory.headroom import HeadroomWatch, binding_limit
from memtui.memory.system import SystemReader, read_cgroups, read_meminfo
from memtui.memory.units import GB, MB

V1_UNLIMITED = "9223372036854771712"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def meminfo(total_mb: int, available_mb: int | None, swap_total_mb: int = 0, swap_free_mb: int = 0) -> str:
    lines = [f"MemTotal:       {total_mb * 1024} kB", f"MemFree:        {total_mb * 512} kB"]
    if available_mb is not None:
        lines.append(f"MemAvailable:   {available_mb * 1024} kB")
    lines += [f"SwapTotal:      {swap_total_mb * 1024} kB", f"SwapFree:       {swap_free_mb * 1024} kB"]
    return "\n".join(lines) + "\n"


def v1_group(folder: Path, *, usage: int, limit: str, inactive: int, memsw: int | None = None) -> None:
    write(folder / "memory.usage_in_bytes", f"{usage}\n")
    write(folder / "memory.limit_in_bytes", f"{limit}\n")
    write(folder / "memory.stat", f"cache 1\nrss 2\ninactive_file 7\ntotal_inactive_file {inactive}\n")
    if memsw is not None:
        write(folder / "memory.memsw.usage_in_bytes", f"{memsw}\n")


def v2_group(folder: Path, *, current: int, max_: str, inactive: int, swap: int | None = None) -> None:
    write(folder / "memory.current", f"{current}\n")
    write(folder / "memory.max", f"{max_}\n")
    write(folder / "memory.stat", f"anon 5\nfile 9\ninactive_file {inactive}\nactive_file 3\n")
    if swap is not None:
        write(folder / "memory.swap.current", f"{swap}\n")


@pytest.fixture
def v1_tree(tmp_path):
    """A hybrid host as in many containers: a '0::/' line, but memory on a v1 hierarchy.

    The job's own cgroup has no limit; its parent /jobs has 1GB.
    """
    proc, sys_root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "self" / "cgroup", "5:cpu:/\n4:memory:/jobs/a\n0::/\n")
    write(proc / "meminfo", meminfo(8192, 6000, swap_total_mb=2048, swap_free_mb=1536))
    mem = sys_root / "memory"
    v1_group(mem, usage=7 * GB, limit=V1_UNLIMITED, inactive=1 * GB)
    v1_group(mem / "jobs", usage=900 * MB, limit=str(1 * GB), inactive=200 * MB)
    v1_group(mem / "jobs" / "a", usage=500 * MB, limit=V1_UNLIMITED, inactive=50 * MB, memsw=520 * MB)
    return proc, sys_root


def test_v1_reads_own_cgroup_and_the_limited_ancestor(v1_tree):
    proc, sys_root = v1_tree
    groups = read_cgroups(proc, sys_root)
    # own first (for its usage), then only ancestors with a limit (the root's is ~2**63: none)
    assert [(g.version, g.path, g.limit) for g in groups] == [(1, "/jobs/a", None), (1, "/jobs", 1 * GB)]
    own = groups[0]
    assert own.working_set == 450 * MB  # usage less total_inactive_file, as the OOM killer counts
    assert own.swap == 20 * MB  # memsw less usage
    jobs = groups[1]
    assert jobs.headroom == 1 * GB - 700 * MB


def test_v1_binding_limit_is_the_ancestor_not_memavailable(v1_tree):
    reading = SystemReader(*v1_tree, getrlimit=None).read()
    assert reading.binding_cgroup().path == "/jobs"
    assert binding_limit(reading) == (324 * MB, "cgroup v1 /jobs")
    assert reading.system.available == 6000 * MB
    assert reading.system.swap_used == 512 * MB


def test_v2_memory_max_up_the_tree(tmp_path):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "self" / "cgroup", "0::/user.slice/job.scope\n")
    write(proc / "meminfo", meminfo(4096, 3000))
    write(root / "cgroup.controllers", "cpu memory\n")  # the root has no memory.current
    v2_group(root / "user.slice", current=1500 * MB, max_=str(2 * GB), inactive=300 * MB)
    v2_group(root / "user.slice" / "job.scope", current=1200 * MB, max_="max", inactive=100 * MB, swap=64 * MB)
    reading = SystemReader(proc, root, getrlimit=None).read()
    own = reading.own_cgroup
    assert (own.version, own.path, own.limit, own.swap) == (2, "/user.slice/job.scope", None, 64 * MB)
    assert own.working_set == 1100 * MB
    assert binding_limit(reading) == (2 * GB - 1200 * MB, "cgroup v2 /user.slice")


def test_v2_limit_below_memavailable_and_rlimit_binds_when_lowest(tmp_path):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "self" / "cgroup", "0::/job\n")
    write(proc / "meminfo", meminfo(4096, 3000))
    write(proc / "self" / "status", "Name:\tpython\nVmSize:\t  1048576 kB\nVmRSS:\t  204800 kB\n")
    v2_group(root / "job", current=1 * GB, max_=str(3 * GB), inactive=0)

    def rlimit(limit):
        return lambda _which: (limit, limit)

    reading = SystemReader(proc, root, getrlimit=rlimit(1536 * MB)).read()
    assert reading.address_space.used == 1 * GB
    assert binding_limit(reading) == (512 * MB, "RLIMIT_AS")
    # without the rlimit, the cgroup (2GB left) is further than MemAvailable (3000MB): the system binds
    reading = SystemReader(proc, root, getrlimit=None).read()
    assert binding_limit(reading) == (2 * GB, "cgroup v2 /job")
    write(root / "job" / "memory.max", f"{5 * GB}\n")
    assert binding_limit(SystemReader(proc, root, getrlimit=None).read()) == (3000 * MB, "system MemAvailable")


@pytest.mark.parametrize("version", [1, 2])
def test_nested_limits_the_tighter_ancestor_binds_not_the_nearest(tmp_path, version):
    """Own 4GB (3.5GB left), its parent 3GB (1GB left), the grandparent 2GB with busy siblings (200MB
    left), the root unlimited: the grandparent binds, though the job's own cgroup and its parent have a
    limit of their own. Then the grandparent's siblings leave: the parent binds; then the job's own."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "meminfo", meminfo(65536, 60000))
    if version == 1:
        write(proc / "self" / "cgroup", "4:memory:/team/jobs/a\n0::/\n")
        mount = root / "memory"

        def group(folder, used, limit):
            v1_group(folder, usage=used + 10 * MB, limit=limit, inactive=10 * MB)

        group(mount, 20 * GB, V1_UNLIMITED)
    else:
        write(proc / "self" / "cgroup", "0::/team/jobs/a\n")
        mount = root
        write(root / "cgroup.controllers", "cpu memory\n")

        def group(folder, used, limit):
            v2_group(folder, current=used + 10 * MB, max_=limit, inactive=10 * MB)

    group(mount / "team", 1848 * MB, str(2 * GB))
    group(mount / "team" / "jobs", 2 * GB, str(3 * GB))
    group(mount / "team" / "jobs" / "a", 512 * MB, str(4 * GB))
    reading = SystemReader(proc, root, getrlimit=None).read()
    assert [c.path for c in reading.cgroups] == ["/team/jobs/a", "/team/jobs", "/team"], "every limited ancestor"
    assert binding_limit(reading) == (200 * MB, f"cgroup v{version} /team")
    watch = HeadroomWatch(SystemReader(proc, root, getrlimit=None))
    watch.observe(0.0, 0)
    assert (watch.latest.bytes, watch.latest.binds, watch.latest.cgroup_limit_bytes) == (
        200 * MB,
        f"cgroup v{version} /team",
        2 * GB,
    )
    group(mount / "team", 1 * GB, str(2 * GB))  # the siblings left: 1GB left there, 1GB in /team/jobs
    group(mount / "team" / "jobs", 2 * GB + 1, str(3 * GB))
    assert binding_limit(SystemReader(proc, root, getrlimit=None).read()) == (
        1 * GB - 1,
        f"cgroup v{version} /team/jobs",
    )
    group(mount / "team" / "jobs" / "a", 3996 * MB, str(4 * GB))  # the job's own limit is nearest now
    assert binding_limit(SystemReader(proc, root, getrlimit=None).read()) == (
        100 * MB,
        f"cgroup v{version} /team/jobs/a",
    )


def test_a_hybrid_host_with_v2_memory_on_unified_is_read_by_the_headroom(tmp_path):
    """systemd's hybrid layout: v1 hierarchies for other controllers, the v2 one (with memory) at unified/."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "self" / "cgroup", "5:cpu,cpuacct:/job.scope\n1:name=systemd:/job.scope\n0::/job.scope\n")
    write(proc / "meminfo", meminfo(16384, 12000))
    write(root / "cpu,cpuacct" / "job.scope" / "cpu.shares", "1024\n")  # v1, but not memory
    write(root / "unified" / "cgroup.controllers", "memory pids\n")
    v2_group(root / "unified" / "job.scope", current=700 * MB, max_=str(1 * GB), inactive=100 * MB, swap=0)
    watch = HeadroomWatch(SystemReader(proc, root, getrlimit=None))
    watch.cost.begin(0)
    watch.cost.end(500 * MB)  # one batch costs 500MB: more than the 424MB left
    change = watch.observe(0.0, 0)
    assert change is not None and change.low
    h = watch.latest
    assert (h.bytes, h.binds, h.cgroup, h.cgroup_limit_bytes) == (
        1 * GB - 600 * MB,
        "cgroup v2 /job.scope",
        "cgroup v2 /job.scope",
        1 * GB,
    )


def test_namespace_path_missing_under_the_mount_reads_the_mount_root(tmp_path):
    """A container without its own cgroup namespace names a host path; the mount's root is its cgroup."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "self" / "cgroup", "0::/kubepods/pod123/ctr\n")
    v2_group(root, current=700 * MB, max_=str(1 * GB), inactive=100 * MB)
    groups = read_cgroups(proc, root)
    assert [(g.path, g.headroom) for g in groups] == [("/", 1 * GB - 600 * MB)]


def test_no_cgroup_and_old_kernel(tmp_path):
    proc = tmp_path / "proc"
    write(proc / "meminfo", meminfo(2048, None))  # before 3.14: no MemAvailable
    reading = SystemReader(proc, tmp_path / "nothing", getrlimit=None).read()
    assert reading.cgroups == ()
    assert reading.binding_cgroup() is None
    assert reading.system.available == 1024 * MB  # MemFree, the honest lower bound
    assert binding_limit(reading) == (1024 * MB, "system MemAvailable")
    assert read_meminfo(tmp_path / "absent") is None
    assert binding_limit(SystemReader(tmp_path / "absent", tmp_path / "none", getrlimit=None).read()) is None


def test_garbage_files_are_no_reading(tmp_path):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "self" / "cgroup", "4:memory:/x\n")
    write(root / "memory" / "x" / "memory.usage_in_bytes", "not a number\n")
    (root / "memory" / "x" / "memory.limit_in_bytes").mkdir()
    assert read_cgroups(proc, root) == ()


# -- a real v1 memory cgroup ---------------------------------------------------------------

V1_MOUNT = Path("/sys/fs/cgroup/memory")

CHILD = textwrap.dedent(
    """
    import json, sys
    from memtui.memory.headroom import HeadroomWatch, binding_limit
    from memtui.memory.system import SystemReader
    held = bytearray(int(sys.argv[1]))
    for i in range(0, len(held), 4096):
        held[i] = 1
    reading = SystemReader(getrlimit=None).read()
    own = reading.own_cgroup
    print(json.dumps({
        "path": own.path, "version": own.version, "limit": own.limit, "usage": own.usage,
        "working_set": own.working_set, "binding": binding_limit(reading),
        "available": reading.system.available,
    }))
    sys.stdout.flush()
    sys.stdin.read()  # held until the parent has read the cgroup's own files
    """
)


def make_v1_cgroup(limit: int = 600 * MB) -> Path:
    """A new v1 memory cgroup with ``limit`` (the caller removes it once empty); skips where none can be made."""
    if not (V1_MOUNT / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory on this machine")
    folder = V1_MOUNT / f"memtui-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir()
        (folder / "memory.limit_in_bytes").write_text(str(limit))
    except OSError as exc:
        if folder.exists():
            folder.rmdir()
        pytest.skip(f"cannot create a memory cgroup here ({exc.strerror}): needs root and a writable cgroupfs")
    return folder


def test_real_v1_cgroup_readings_match_the_kernel():
    folder = make_v1_cgroup()
    held = 120 * MB
    child = None
    try:
        # The child joins the cgroup before it starts (preexec), so all it allocates is charged there.
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(held)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: (folder / "cgroup.procs").write_text(str(os.getpid())),
            cwd=Path(__file__).resolve().parents[2],
        )
        assert child.stdout is not None
        seen = json.loads(child.stdout.readline())
        usage_now = int((folder / "memory.usage_in_bytes").read_text())
        assert seen["path"] == "/" + folder.name
        assert (seen["version"], seen["limit"]) == (1, 600 * MB)
        # what the child read is what the kernel charges (the child idles between the two reads)
        assert abs(seen["usage"] - usage_now) < 16 * MB
        assert held <= seen["working_set"] <= seen["usage"] < 600 * MB
        # the cgroup binds unless the machine itself has less left, as the OOM killers would see it
        expected = min(
            [600 * MB - seen["working_set"], f"cgroup v1 /{folder.name}"], [seen["available"], "system MemAvailable"]
        )
        assert seen["binding"] == expected
    finally:
        if child is not None:
            child.communicate("", timeout=30)
        folder.rmdir()


def test_real_nested_v1_cgroups_the_tighter_parent_binds():
    """A job in its own cgroup (1GB) inside a parent of 300MB: the kernel charges the parent too, and the
    parent's limit, the tighter one, is the headroom's."""
    parent = make_v1_cgroup(limit=300 * MB)
    own = parent / "job"
    child = None
    try:
        own.mkdir()
        (own / "memory.limit_in_bytes").write_text(str(1 * GB))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(100 * MB)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: (own / "cgroup.procs").write_text(str(os.getpid())),
            cwd=Path(__file__).resolve().parents[2],
        )
        assert child.stdout is not None
        seen = json.loads(child.stdout.readline())
        assert seen["path"] == f"/{parent.name}/job" and seen["limit"] == 1 * GB
        headroom, binds = seen["binding"]
        assert binds == f"cgroup v1 /{parent.name}"
        # the parent's working set holds the child's (hierarchical accounting): less than 200MB left
        assert 0 < headroom <= 200 * MB
    finally:
        if child is not None:
            child.communicate("", timeout=30)
        if own.exists():
            own.rmdir()
        parent.rmdir()
