import os
import resource
import struct

import psutil
import pytest

from memtui.memory.cleanup import malloc_trim
from memtui.memory.probe import MemoryLimit, ProcessProbe, RssBreakdown, discover_limit
from memtui.memory.units import GB, MB

V1_UNLIMITED = "9223372036854771712"


def make_tree(tmp_path, *, cgroup: str | None, ram_gb: float | None = 16, files: dict[str, str] = ()):
    """A fake /proc (self/cgroup, meminfo) and /sys/fs/cgroup holding ``files`` (path -> content)."""
    proc, cg = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    cg.mkdir()
    if cgroup is not None:
        (proc / "self" / "cgroup").write_text(cgroup)
    if ram_gb is not None:
        (proc / "meminfo").write_text(f"MemTotal:       {int(ram_gb * GB) // 1024} kB\nMemFree:  1 kB\n")
    for rel, content in dict(files).items():
        path = cg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    return proc, cg


def limit(proc, cg) -> MemoryLimit:
    return discover_limit(proc_root=proc, cgroup_root=cg, getrlimit=None)


def test_v2_nested_ancestor_max_binds(tmp_path):
    proc, cg = make_tree(
        tmp_path,
        cgroup="0::/a/b\n",
        files={
            "a/memory.max": str(2 * GB),
            "a/b/memory.max": "max",
            "a/b/memory.high": str(3 * GB),
            "memory.max": "max",
        },
    )
    found = limit(proc, cg)
    assert found == MemoryLimit(2 * GB, "cgroup memory.max (/a)")
    assert found.describe() == "limit 2.0GB from cgroup memory.max (/a)"


def test_v2_memory_high_below_max(tmp_path):
    proc, cg = make_tree(
        tmp_path,
        cgroup="0::/job.scope\n",
        files={
            "job.scope/memory.max": str(4 * GB),
            "job.scope/memory.high": str(3 * GB),
        },
    )
    assert limit(proc, cg) == MemoryLimit(3 * GB, "cgroup memory.high (/job.scope)")


def test_v2_root_cgroup_in_a_namespace(tmp_path):
    # Inside a container with its own cgroup namespace, /proc/self/cgroup says "0::/".
    proc, cg = make_tree(tmp_path, cgroup="0::/\n", files={"memory.max": str(GB)})
    assert limit(proc, cg) == MemoryLimit(GB, "cgroup memory.max (/)")


def test_v2_host_path_missing_under_container_mount(tmp_path):
    # No cgroup namespace: the host path does not exist under the container's mount; its root binds.
    proc, cg = make_tree(tmp_path, cgroup="0::/system.slice/docker-abc.scope\n", files={"memory.max": str(GB // 2)})
    assert limit(proc, cg).bytes == GB // 2


def test_v2_hybrid_unified_mount(tmp_path):
    proc, cg = make_tree(
        tmp_path,
        cgroup="4:memory:/\n0::/user.slice\n",
        files={
            "unified/user.slice/memory.max": str(6 * GB),
            "memory/memory.limit_in_bytes": V1_UNLIMITED,
        },
    )
    assert limit(proc, cg) == MemoryLimit(6 * GB, "cgroup memory.max (/user.slice)")


def test_v2_without_limits_falls_back_to_ram(tmp_path):
    proc, cg = make_tree(tmp_path, cgroup="0::/a\n", ram_gb=8, files={"a/memory.max": "max", "a/memory.high": "max"})
    assert limit(proc, cg) == MemoryLimit(8 * GB, "physical RAM")


def test_ram_smaller_than_cgroup_wins(tmp_path):
    proc, cg = make_tree(tmp_path, cgroup="0::/a\n", ram_gb=1, files={"a/memory.max": str(4 * GB)})
    assert limit(proc, cg).source == "physical RAM"


def test_v1_memory_controller(tmp_path):
    proc, cg = make_tree(
        tmp_path,
        cgroup="5:cpu,cpuacct:/x\n4:memory:/docker/abc\n1:name=systemd:/\n",
        files={
            "memory/docker/abc/memory.limit_in_bytes": str(GB + GB // 2),
        },
    )
    assert limit(proc, cg) == MemoryLimit(GB + GB // 2, "cgroup v1 memory.limit_in_bytes (/docker/abc)")


def test_v1_unlimited_is_no_limit(tmp_path):
    proc, cg = make_tree(
        tmp_path,
        cgroup="4:memory:/process_api/x\n0::/\n",
        ram_gb=24,
        files={
            "memory/process_api/x/memory.limit_in_bytes": V1_UNLIMITED,
            "memory/memory.limit_in_bytes": V1_UNLIMITED,
        },
    )
    assert limit(proc, cg) == MemoryLimit(24 * GB, "physical RAM")


def test_v1_parent_limit_binds(tmp_path):
    proc, cg = make_tree(
        tmp_path,
        cgroup="4:memory:/batch/job7\n",
        files={
            "memory/batch/job7/memory.limit_in_bytes": V1_UNLIMITED,
            "memory/batch/memory.limit_in_bytes": str(3 * GB),
        },
    )
    assert limit(proc, cg) == MemoryLimit(3 * GB, "cgroup v1 memory.limit_in_bytes (/batch)")


def test_v1_namespaced_container(tmp_path):
    # /proc/self/cgroup names the host path; the mount holds only the container's own cgroup.
    proc, cg = make_tree(tmp_path, cgroup="4:memory:/docker/abc\n", files={"memory/memory.limit_in_bytes": str(2 * GB)})
    assert limit(proc, cg).bytes == 2 * GB


@pytest.mark.parametrize("content", ["", "garbage", "0", "-1"])
def test_unreadable_limit_values_are_ignored(tmp_path, content):
    proc, cg = make_tree(tmp_path, cgroup="0::/a\n", ram_gb=8, files={"a/memory.max": content})
    assert limit(proc, cg).bytes == 8 * GB


def test_no_cgroup_file(tmp_path):
    proc, cg = make_tree(tmp_path, cgroup=None, ram_gb=12)
    assert limit(proc, cg) == MemoryLimit(12 * GB, "physical RAM")


def test_no_meminfo_uses_sysconf(tmp_path):
    proc, cg = make_tree(tmp_path, cgroup=None, ram_gb=None)
    found = limit(proc, cg)
    assert found.source == "physical RAM"
    assert found.bytes == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_rlimit_is_a_candidate(tmp_path):
    proc, cg = make_tree(tmp_path, cgroup="0::/a\n", files={"a/memory.max": str(4 * GB)})

    def fake_getrlimit(which):
        if which == resource.RLIMIT_AS:
            return (GB, resource.RLIM_INFINITY)
        return (resource.RLIM_INFINITY, resource.RLIM_INFINITY)

    found = discover_limit(proc_root=proc, cgroup_root=cg, getrlimit=fake_getrlimit)
    assert found == MemoryLimit(GB, "RLIMIT_AS")
    unlimited = discover_limit(
        proc_root=proc, cgroup_root=cg, getrlimit=lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    )
    assert unlimited.source.startswith("cgroup memory.max")


def test_real_limit_is_plausible():
    found = discover_limit()
    assert 0 < found.bytes <= psutil.virtual_memory().total
    assert found.describe().startswith("limit ")


# -- the real probe --------------------------------------------------------------------


def test_rss_matches_psutil():
    probe = ProcessProbe()
    try:
        ours, theirs = probe.rss_bytes(), psutil.Process().memory_info().rss
        assert abs(ours - theirs) <= max(8 * MB, theirs * 0.05)
    finally:
        probe.close()


def test_rss_sees_an_allocation_and_its_release():
    probe = ProcessProbe()
    try:
        before = probe.rss_bytes()
        block = bytearray(128 * MB)
        for i in range(0, len(block), 4096):
            block[i] = 1
        during = probe.rss_bytes()
        del block
        malloc_trim()  # the block may have come from the heap's free lists rather than its own mapping
        after = probe.rss_bytes()
        assert during - before >= 120 * MB
        assert during - after >= 120 * MB
    finally:
        probe.close()


def test_statm_is_kept_open():
    probe = ProcessProbe()
    try:
        probe.rss_bytes()
        fds = len(os.listdir("/proc/self/fd"))
        for _ in range(200):
            probe.rss_bytes()
        assert len(os.listdir("/proc/self/fd")) == fds
    finally:
        probe.close()
    assert probe.rss_bytes() > 0  # reopens after close


def test_breakdown_adds_up():
    probe = ProcessProbe()
    parts = probe.breakdown()
    assert isinstance(parts, RssBreakdown)
    assert parts.anon > 0 and parts.file > 0
    assert parts.anon + parts.file + parts.shmem == pytest.approx(parts.rss, abs=2 * MB)
    block = bytearray(64 * MB)
    for i in range(0, len(block), 4096):
        block[i] = 1
    grown = probe.breakdown()
    del block
    assert grown.anon - parts.anon >= 60 * MB


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_statm_reopened_after_fork():
    probe = ProcessProbe()
    parent_before = probe.rss_bytes()  # opens the fd in the parent
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: allocate, read through the inherited probe, report, exit at once
        try:
            os.close(read_fd)
            start = psutil.Process().memory_info().rss  # a fork shares file-backed pages lazily: measure here
            block = bytearray(200 * MB)
            for i in range(0, len(block), 4096):
                block[i] = 1
            mine = probe.rss_bytes()
            truth = psutil.Process().memory_info().rss
            os.write(write_fd, struct.pack("qqq", mine, truth, start))
        finally:
            os._exit(0)
    os.close(write_fd)
    data = os.read(read_fd, 24)
    os.close(read_fd)
    os.waitpid(pid, 0)
    child_probe, child_truth, child_start = struct.unpack("qqq", data)
    assert abs(child_probe - child_truth) <= 16 * MB
    assert child_probe - child_start >= 150 * MB  # the child's own growth, not the parent's number
    assert probe.rss_bytes() < parent_before + 100 * MB
    probe.close()


def test_falls_back_to_psutil_without_proc(monkeypatch):
    real_open = os.open

    def no_statm(path, *args, **kwargs):
        if str(path).endswith("statm"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_statm)
    probe = ProcessProbe()
    value = probe.rss_bytes()
    assert probe._fd is None  # really took the psutil path
    assert abs(value - psutil.Process().memory_info().rss) <= 8 * MB
