"""The memory that gets a job killed: the system's, the memory cgroup's and the address space's.

A process's RSS says what it holds; the kernel kills it for what the whole
machine or its cgroup holds. These readers say how much is left at each of
those: MemAvailable and swap from /proc/meminfo, the cgroup's usage against
its limit (v1 or v2, this process's cgroup and every ancestor with a limit),
and RLIMIT_AS against the address space in use. Page cache the kernel drops
before it kills (inactive file pages) does not count as used, as the cgroup's
OOM killer sees it. Roots are injectable: tests read fake /proc and /sys trees.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memtui.memory.probe import _UNLIMITED, _cgroup_paths

GetRlimit = Callable[[int], tuple[int, int]]


@dataclass(frozen=True)
class SystemMemory:
    """/proc/meminfo: RAM, what the kernel says it can still give without swapping, and swap."""

    total: int
    available: int
    swap_total: int
    swap_free: int

    @property
    def swap_used(self) -> int:
        return max(0, self.swap_total - self.swap_free)


@dataclass(frozen=True)
class CgroupMemory:
    """One memory cgroup: what it is charged, the page cache it can drop, and its limit."""

    version: int  # 1 or 2
    path: str  # as /proc/self/cgroup names it ("/" for the mount's root)
    usage: int  # memory.current / memory.usage_in_bytes (page cache included)
    inactive_file: int  # page cache the kernel reclaims before it kills
    limit: int | None  # memory.max / memory.limit_in_bytes; None: no limit
    swap: int | None = None  # swap charged to it, where the kernel accounts it

    @property
    def working_set(self) -> int:
        """Usage as the cgroup's OOM killer sees it: less the inactive page cache."""
        return max(0, self.usage - self.inactive_file)

    @property
    def headroom(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.working_set)

    @property
    def name(self) -> str:
        return f"cgroup v{self.version} {self.path}"


@dataclass(frozen=True)
class AddressSpace:
    """RLIMIT_AS against the virtual memory in use (past it, allocations fail with MemoryError)."""

    limit: int
    used: int

    @property
    def headroom(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class SystemReading:
    system: SystemMemory | None
    #: This process's memory cgroup first, then each ancestor with a limit.
    cgroups: tuple[CgroupMemory, ...]
    address_space: AddressSpace | None

    @property
    def own_cgroup(self) -> CgroupMemory | None:
        return self.cgroups[0] if self.cgroups else None

    def binding_cgroup(self) -> CgroupMemory | None:
        """The limited cgroup with the least headroom (the nearest one when none is limited)."""
        limited = [c for c in self.cgroups if c.limit is not None]
        if limited:
            return min(limited, key=lambda c: c.headroom or 0)
        return self.own_cgroup


class SystemReader:
    """Reads the three once per ``read()`` (a few small files: call it about once a second, not per sample)."""

    def __init__(
        self,
        proc_root: str | os.PathLike[str] = "/proc",
        cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
        *,
        getrlimit: GetRlimit | None = resource.getrlimit,
    ) -> None:
        """``getrlimit=None`` leaves RLIMIT_AS out (tests on fake trees must not see the real process's)."""
        self.proc = Path(proc_root)
        self.cgroup_root = Path(cgroup_root)
        self.getrlimit = getrlimit

    def read(self) -> SystemReading:
        return SystemReading(
            system=read_meminfo(self.proc),
            cgroups=read_cgroups(self.proc, self.cgroup_root),
            address_space=read_address_space(self.proc, self.getrlimit),
        )


def read_meminfo(proc: Path) -> SystemMemory | None:
    fields = _kb_fields(proc / "meminfo")
    if "MemTotal" not in fields:
        return None
    # Kernels before 3.14 have no MemAvailable: free memory is the honest lower bound there.
    available = fields.get("MemAvailable", fields.get("MemFree", 0))
    return SystemMemory(
        total=fields["MemTotal"],
        available=available,
        swap_total=fields.get("SwapTotal", 0),
        swap_free=fields.get("SwapFree", 0),
    )


def read_address_space(proc: Path, getrlimit: GetRlimit | None) -> AddressSpace | None:
    if getrlimit is None:
        return None
    soft, _hard = getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or not 0 < soft < _UNLIMITED:
        return None
    used = _kb_fields(proc / "self" / "status").get("VmSize")
    return AddressSpace(limit=soft, used=used) if used is not None else None


def read_cgroups(proc: Path, cgroup_root: Path) -> tuple[CgroupMemory, ...]:
    """This process's memory cgroup and each ancestor with a limit, nearest first; () if none is readable.

    v2 first (the unified mount at the root, or at unified/ on hybrid systems), then v1.
    A cgroup namespace may name a path that does not exist under the mount: walking
    up reaches the mount's root, which is then the container's own cgroup.
    """
    v2, v1 = _cgroup_paths(proc)
    if v2 is not None:
        for mount in (cgroup_root, cgroup_root / "unified"):
            found = _walk(mount, v2, _read_v2)
            if found:
                return found
    if v1 is not None:
        for mount in (cgroup_root / "memory", cgroup_root):
            found = _walk(mount, v1, _read_v1)
            if found:
                return found
    return ()


Read = Callable[[Path, str, bool], CgroupMemory | None]


def _walk(mount: Path, cgroup_path: str, read: Read) -> tuple[CgroupMemory, ...]:
    rel = Path(cgroup_path.lstrip("/"))
    found: list[CgroupMemory] = []
    for ancestor in [rel, *rel.parents]:
        name = "/" if str(ancestor) == "." else "/" + str(ancestor)
        cgroup = read(mount / ancestor, name, bool(found))
        if cgroup is not None:
            found.append(cgroup)
    return tuple(found)


def _read_v2(folder: Path, name: str, limited_only: bool) -> CgroupMemory | None:
    """The cgroup in ``folder``; with ``limited_only`` (an ancestor), None unless it has a limit."""
    limit = _read_limit(folder / "memory.max")
    if limited_only and limit is None:
        return None
    usage = _read_int(folder / "memory.current")
    if usage is None:  # not a cgroup folder, or the root (which has no memory.current)
        return None
    return CgroupMemory(
        version=2,
        path=name,
        usage=usage,
        inactive_file=_stat_fields(folder / "memory.stat").get("inactive_file", 0),
        limit=limit,
        swap=_read_int(folder / "memory.swap.current"),
    )


def _read_v1(folder: Path, name: str, limited_only: bool) -> CgroupMemory | None:
    limit = _read_limit(folder / "memory.limit_in_bytes")
    if limited_only and limit is None:
        return None
    usage = _read_int(folder / "memory.usage_in_bytes")
    if usage is None:
        return None
    stat = _stat_fields(folder / "memory.stat")
    memsw = _read_int(folder / "memory.memsw.usage_in_bytes")
    return CgroupMemory(
        version=1,
        path=name,
        usage=usage,
        # total_ counts the cgroup's children too, as its usage does
        inactive_file=stat.get("total_inactive_file", stat.get("inactive_file", 0)),
        limit=limit,
        swap=max(0, memsw - usage) if memsw is not None else None,
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # absent, a folder, or gone with its cgroup
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _read_limit(path: Path) -> int | None:
    """A limit file's value; None for "max", absent or unlimited (v1 says ~2**63)."""
    value = _read_int(path)
    return value if value is not None and 0 < value < _UNLIMITED else None


def _stat_fields(path: Path) -> dict[str, int]:
    """memory.stat's ``name value`` lines."""
    out: dict[str, int] = {}
    for line in (_read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def _kb_fields(path: Path) -> dict[str, int]:
    """``Name:   123 kB`` lines (/proc/meminfo, /proc/self/status) in bytes."""
    out: dict[str, int] = {}
    for line in (_read_text(path) or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out
