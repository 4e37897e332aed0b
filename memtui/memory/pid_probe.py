"""PidProbe: the memory of another process (and, if asked, its descendants).

For watching processes memtui did not start. RSS is cheap (one read of
/proc/<pid>/statm); USS and PSS make the kernel walk the page tables
(/proc/<pid>/smaps_rollup), about 1 ms per 70 MB resident, so callers ask for
them only when they can afford it. A process that exits, turns zombie or whose
pid now belongs to someone else raises ProcessGone; one the user may not read
raises ProcessAccessDenied. Both carry a one-line message.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import psutil


class PidProbeError(Exception):
    def __init__(self, pid: int, message: str) -> None:
        super().__init__(message)
        self.pid = pid


class ProcessGone(PidProbeError):
    """The process exited, is a zombie, or its pid was reused by another process."""


class ProcessAccessDenied(PidProbeError):
    """This user may not read the process's memory."""


@dataclass(frozen=True)
class PidSample:
    rss: int  # bytes, summed over ``processes``
    uss: int | None  # None when not asked for, denied or unsupported
    pss: int | None
    processes: int  # the process plus the descendants counted
    status: str  # psutil status of the process itself ("running", "sleeping", "stopped", ...)
    detail_cost_s: float | None = None  # what reading USS/PSS took
    detail_denied: bool = False  # USS/PSS asked for but not readable (another user's process)


def ppid_map() -> dict[int, int]:
    """pid -> parent pid for every process; build it once per round and share it between probes.

    Reads /proc/<pid>/stat directly where there is a /proc (about 6x cheaper than psutil.process_iter).
    """
    if not os.path.isdir("/proc/self"):
        return {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"]) if p.info.get("ppid") is not None}
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
            out[int(entry.name)] = int(stat[stat.rindex(b")") + 2 :].split(None, 2)[1])
        except (OSError, ValueError):
            continue  # exited mid-scan
    return out


def descendants(pid: int, ppids: Mapping[int, int]) -> list[int]:
    """All descendants of ``pid``, parents before their children."""
    children: dict[int, list[int]] = {}
    for child, parent in ppids.items():
        children.setdefault(parent, []).append(child)
    out: list[int] = []
    seen = {pid}
    queue = collections.deque(children.get(pid, ()))
    while queue:
        child = queue.popleft()
        if child in seen:
            continue  # pid 0's self-parenting, or a cycle from pids reused mid-scan
        seen.add(child)
        out.append(child)
        queue.extend(children.get(child, ()))
    return out


def command_line(proc: psutil.Process) -> tuple[str, str]:
    """(name, joined command line); the command line is empty where it cannot be read."""
    try:
        name = proc.name()
    except (psutil.AccessDenied, psutil.ZombieProcess):
        name = "?"
    try:
        cmdline = " ".join(proc.cmdline())
    except (psutil.AccessDenied, psutil.ZombieProcess):
        cmdline = ""
    return name, cmdline


class PidProbe:
    """Memory of process ``pid``; with ``children=True`` its descendants' memory is added in."""

    def __init__(self, pid: int, *, children: bool = False) -> None:
        self.pid = pid
        self.children = children
        try:
            self.process = psutil.Process(pid)
            self.name, self.cmdline = command_line(self.process)
        except psutil.NoSuchProcess:
            raise ProcessGone(pid, f"no process with pid {pid}") from None
        except psutil.AccessDenied:
            raise ProcessAccessDenied(pid, f"pid {pid}: access denied") from None

    # Satisfies memtui.memory.probe.Probe, so a MemoryMonitor can watch another process too.
    def rss_bytes(self) -> int:
        return self.sample().rss

    def processes(self, ppids: Mapping[int, int] | None = None) -> list[psutil.Process]:
        """The process and, with ``children``, its live descendants (what the numbers cover)."""
        self._check_alive()
        procs = [self.process]
        if self.children:
            table = ppid_map() if ppids is None else ppids
            for pid in descendants(self.pid, table):
                try:
                    procs.append(psutil.Process(pid))
                except psutil.Error:
                    continue  # exited between the scan and now
        return procs

    def sample(self, *, detail: bool = False, ppids: Mapping[int, int] | None = None) -> PidSample:
        """Read memory once. ``detail`` adds USS/PSS; ``ppids`` reuses a ppid_map() built for this round."""
        procs = self.processes(ppids)
        try:
            status = self.process.status()
            rss = self.process.memory_info().rss
        except psutil.NoSuchProcess:
            raise ProcessGone(self.pid, f"pid {self.pid} exited") from None
        except psutil.AccessDenied:
            raise ProcessAccessDenied(self.pid, f"pid {self.pid}: access denied reading its memory") from None
        if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            raise ProcessGone(self.pid, f"pid {self.pid} exited (zombie until its parent reaps it)")
        counted = 1
        for proc in procs[1:]:
            try:
                rss += proc.memory_info().rss
                counted += 1
            except psutil.Error:
                continue  # a child that exited or is not ours: leave it out
        uss = pss = None
        cost = None
        denied = False
        if detail:
            uss, pss, cost, denied = self._detail(procs)
        return PidSample(
            rss=rss, uss=uss, pss=pss, processes=counted, status=status, detail_cost_s=cost, detail_denied=denied
        )

    def _detail(self, procs: list[psutil.Process]) -> tuple[int | None, int | None, float, bool]:
        t0 = time.perf_counter()
        uss = pss = 0
        try:
            for proc in procs:
                try:
                    full = proc.memory_full_info()
                except psutil.NoSuchProcess:
                    continue
                uss += full.uss
                pss += getattr(full, "pss", 0)
        except psutil.AccessDenied:
            return None, None, time.perf_counter() - t0, True
        return uss, pss, time.perf_counter() - t0, False

    def _check_alive(self) -> None:
        """Raise ProcessGone if the pid exited or now names a different process (pid reuse)."""
        try:
            alive = self.process.is_running()
        except psutil.Error:
            alive = False
        if not alive:
            reused = psutil.pid_exists(self.pid)
            why = "exited (its pid now belongs to another process)" if reused else "exited"
            raise ProcessGone(self.pid, f"pid {self.pid} {why}")
