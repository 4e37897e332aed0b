"""Which processes to watch: explicit pids, a command-line pattern, or the user's top memory users.

Matching and the default list never include memtui itself or the processes
that started it (a shell running ``memtui ... --match worker`` matches too).
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
from dataclasses import dataclass

import psutil

from memtui.errors import UsageError
from memtui.memory.pid_probe import PidProbe, ProcessAccessDenied, ProcessGone

#: How many processes the default selection watches.
TOP_N = 5


@dataclass(frozen=True)
class Selection:
    """What the operator asked to watch (``--pid``, ``--match``, or neither: the top users)."""

    pids: tuple[int, ...] = ()
    match: str | None = None
    children: bool = False
    top_n: int = TOP_N

    @property
    def explicit(self) -> bool:
        return bool(self.pids)

    def describe(self) -> str:
        parts = []
        if self.pids:
            parts.append("pid " + ", ".join(map(str, self.pids)))
        if self.match is not None:
            parts.append(f"command line matching {self.match!r}")
        if not parts:
            parts.append(f"top {self.top_n} memory users of {_user()}")
        return " and ".join(parts) + (" (with children)" if self.children else "")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def memtui_lineage() -> set[int]:
    """memtui's own pid and its ancestors: never matched, never picked by default."""
    pids = {os.getpid()}
    try:
        pids.update(p.pid for p in psutil.Process().parents())
    except psutil.Error:
        pass
    return pids


def matcher(pattern: str):
    """A predicate on the joined command line: the pattern as a regex, or as plain text if it is not one."""
    try:
        regex = re.compile(pattern)
    except re.error:
        return lambda cmdline: pattern in cmdline
    return lambda cmdline: regex.search(cmdline) is not None


def probe_pid(pid: int, children: bool) -> PidProbe:
    """A probe on an explicit --pid; a pid that does not exist is a usage error (exit 2)."""
    if pid == os.getpid():
        raise UsageError(f"pid {pid} is this memtui itself; watch another process")  # it could SIGSTOP itself
    try:
        return PidProbe(pid, children=children)
    except ProcessGone:
        raise UsageError(f"no process with pid {pid}; check the pid (ps -p {pid})") from None
    except ProcessAccessDenied:
        raise UsageError(f"pid {pid} cannot be read by user {_user()}; run memtui as its owner") from None


def find_matching(pattern: str, children: bool, skip: set[int] = frozenset()) -> list[PidProbe]:
    """Probes on every process whose command line matches ``pattern``, except memtui's lineage and ``skip``."""
    matches = matcher(pattern)
    exclude = memtui_lineage() | set(skip)
    probes = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or ())
        if proc.pid in exclude or not cmdline or not matches(cmdline):
            continue
        try:
            probes.append(PidProbe(proc.pid, children=children))
        except (ProcessGone, ProcessAccessDenied):
            continue
    return probes


def top_users(n: int, children: bool) -> list[PidProbe]:
    """The current user's ``n`` largest processes by RSS, memtui excluded."""
    me, exclude = _user(), memtui_lineage()
    ranked = []
    for proc in psutil.process_iter(["username", "memory_info"]):
        info = proc.info
        if proc.pid in exclude or info.get("username") != me or info.get("memory_info") is None:
            continue
        ranked.append((info["memory_info"].rss, proc.pid))
    probes = []
    for _rss, pid in sorted(ranked, reverse=True):
        if len(probes) == n:
            break
        try:
            probes.append(PidProbe(pid, children=children))
        except (ProcessGone, ProcessAccessDenied):
            continue
    return probes


def discover(selection: Selection) -> list[PidProbe]:
    """The probes to start with; raises UsageError (exit 2) when there is nothing to watch."""
    probes = [probe_pid(pid, selection.children) for pid in dict.fromkeys(selection.pids)]
    if selection.match is not None:
        probes += find_matching(selection.match, selection.children, skip={p.pid for p in probes})
        if not probes:
            raise UsageError(f"no process matches {selection.match!r}; check with: pgrep -af {shlex.quote(selection.match)}")
    if not selection.pids and selection.match is None:
        probes = top_users(selection.top_n, selection.children)
        if not probes:
            raise UsageError(f"no processes of user {_user()} to watch; pass --pid N or --match PATTERN")
    return probes
