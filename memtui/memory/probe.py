"""Reading memory: this process's RSS, cheaply, and the real limit it lives under.

Page cache never counts as used: RSS is what the kernel would have to find
room for. File-backed RSS (mmapped model weights) is reported apart from anon
RSS because the kernel can drop it under pressure, while anon memory it cannot.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from memtui.memory.units import format_bytes

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

#: cgroup and rlimit values at or above this are "no limit" (v1 reports ~2**63).
_UNLIMITED = 1 << 60


class Probe(Protocol):
    """Anything that can report a resident set size in bytes."""

    def rss_bytes(self) -> int: ...


@dataclass(frozen=True)
class RssBreakdown:
    rss: int
    anon: int
    file: int
    shmem: int


class ProcessProbe:
    """RSS of this process from a kept-open /proc/self/statm (a pread per sample).

    Falls back to psutil where /proc is absent. Reopens after fork so a child
    never reads its parent's numbers.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = -1
        self._psutil_proc: Any = None  # a psutil.Process once needed (psutil loads lazily)

    def _statm_fd(self) -> int | None:
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    if self._fd is not None:
                        # Inherited across fork: it still reads the parent's /proc/<pid>/statm.
                        try:
                            os.close(self._fd)
                        except OSError:
                            pass
                        self._fd = None
                    try:
                        self._fd = os.open("/proc/self/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    except OSError:
                        self._fd = None
                    self._pid = pid
        return self._fd

    def rss_bytes(self) -> int:
        fd = self._statm_fd()
        if fd is not None:
            fields = os.pread(fd, 128, 0).split()
            return int(fields[1]) * PAGE_SIZE
        return self._psutil().memory_info().rss

    def breakdown(self) -> RssBreakdown:
        """RSS split into anon, file-backed and shared memory (from /proc/self/status)."""
        try:
            text = Path("/proc/self/status").read_text()
        except OSError:
            rss = self.rss_bytes()
            return RssBreakdown(rss=rss, anon=rss, file=0, shmem=0)
        fields: dict[str, int] = {}
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                fields[key] = int(rest.split()[0]) * 1024
        return RssBreakdown(
            rss=fields.get("VmRSS", 0),
            anon=fields.get("RssAnon", 0),
            file=fields.get("RssFile", 0),
            shmem=fields.get("RssShmem", 0),
        )

    def _psutil(self) -> Any:
        if self._psutil_proc is None or self._psutil_proc.pid != os.getpid():
            import psutil  # noqa: PLC0415 - only where /proc is missing

            self._psutil_proc = psutil.Process()
        return self._psutil_proc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._pid = -1


@dataclass(frozen=True)
class MemoryLimit:
    """The smallest memory ceiling this process lives under, and where it comes from."""

    bytes: int
    source: str

    def describe(self) -> str:
        return f"limit {format_bytes(self.bytes)} from {self.source}"


def _read_limit_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 < value < _UNLIMITED else None


def _cgroup_paths(proc_root: Path) -> tuple[str | None, str | None]:
    """(v2 path, v1 memory path) of this process's cgroup, from /proc/self/cgroup."""
    try:
        lines = (proc_root / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None, None
    v2 = v1 = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, path = parts
        if hier == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def discover_limit(
    proc_root: str | os.PathLike[str] = "/proc",
    cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
    *,
    getrlimit: Callable[[int], tuple[int, int]] | None = resource.getrlimit,
) -> MemoryLimit:
    """The smallest of physical RAM, cgroup v2 memory.max/high up the tree, a v1 limit and RLIMIT_AS/RSS.

    ``getrlimit=None`` leaves rlimits out (tests on fake trees must not see the real process's).
    """
    proc, cgroot = Path(proc_root), Path(cgroup_root)
    candidates: list[tuple[int, str]] = []

    ram = _physical_ram(proc)
    if ram:
        candidates.append((ram, "physical RAM"))

    v2, v1 = _cgroup_paths(proc)
    if v2 is not None:
        # Unified mount at the root (pure v2) or at unified/ (hybrid systems).
        for mount in (cgroot, cgroot / "unified"):
            for value, name, where in _walk_up(mount, v2, ("memory.max", "memory.high")):
                candidates.append((value, f"cgroup {name} ({where})"))
    if v1 is not None:
        for mount in (cgroot / "memory", cgroot):
            found = list(_walk_up(mount, v1, ("memory.limit_in_bytes",)))
            for value, _name, where in found:
                candidates.append((value, f"cgroup v1 memory.limit_in_bytes ({where})"))
            if found:
                break

    if getrlimit is not None:
        for name in ("RLIMIT_AS", "RLIMIT_RSS"):
            which = getattr(resource, name, None)
            if which is None:
                continue
            soft, _hard = getrlimit(which)
            if soft != resource.RLIM_INFINITY and 0 < soft < _UNLIMITED:
                candidates.append((soft, name))

    if not candidates:
        return MemoryLimit(bytes=0, source="unknown (no limit found)")
    value, source = min(candidates, key=lambda c: c[0])
    return MemoryLimit(bytes=value, source=source)


def _walk_up(mount: Path, cgroup_path: str, names: tuple[str, ...]) -> Iterator[tuple[int, str, str]]:
    """(limit, file name, cgroup path) for each limit file set from the process's cgroup up to the mount root.

    Any ancestor's limit binds too. Walking up also copes with a cgroup namespace
    whose /proc/self/cgroup names a host path that does not exist under the
    container's mount: the mount root (the container's own cgroup) is still read.
    """
    rel = Path(cgroup_path.lstrip("/"))
    for ancestor in [rel, *rel.parents]:
        folder = mount / ancestor
        for name in names:
            value = _read_limit_file(folder / name)
            if value is not None:
                yield value, name, "/" + str(ancestor) if str(ancestor) != "." else "/"


def _physical_ram(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE
    except (ValueError, OSError, AttributeError):
        return None
