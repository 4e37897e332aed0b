"""Which processes to watch: explicit pids, a command-line pattern, or the user's top memory users.

Matching and the default list never include memtui itself, the processes that
started it (a shell running ``memtui ... --match worker`` matches too) or the
processes memtui started (a resource tracker). Both pick only the current
user's processes (same real uid) unless ``--all-users`` widens --match.
The default list stays live (``TopN``): re-ranked by RSS at each refresh.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import psutil
import regex as timed_re

from memtui.errors import UsageError
from memtui.jobs.monitor.intervene import user_name
from memtui.memory.pid_probe import PidProbe, ProcessAccessDenied, ProcessGone
from memtui.memory.units import MB

#: How many processes the default selection watches.
TOP_N = 5
#: A process takes a place in a full top N only when it is larger than the smallest watched one by
#: both of these: two processes of about the same size must not swap places at every refresh.
ENTER_MARGIN = 0.10
ENTER_GAP = 8 * MB


@dataclass(frozen=True)
class Selection:
    """What the operator asked to watch (``--pid``, ``--match``, or neither: the top users)."""

    pids: tuple[int, ...] = ()
    match: str | None = None
    children: bool = False
    top_n: int = TOP_N
    all_users: bool = False  # --match also matches other users' processes

    def describe(self) -> str:
        parts = []
        if self.pids:
            parts.append("pid " + ", ".join(map(str, self.pids)))
        if self.match is not None:
            parts.append(f"command line matching '{self.match}'" + ("" if self.all_users else f" (user {_user()})"))
        if not parts:
            parts.append(f"top {self.top_n} memory users of {_user()}")
        return " and ".join(parts) + (" (with children)" if self.children else "")

    def top(self) -> TopN | None:
        """The live ranking of the default selection; None when the operator named what to watch."""
        return TopN(self.top_n) if not self.pids and self.match is None else None


def _user() -> str:
    """memtui's user, by its real uid (not $USER, which says nothing about whose processes are whose)."""
    return user_name(os.getuid())


def memtui_lineage() -> set[int]:
    """memtui's own pid, its ancestors and its descendants: never matched, never picked by default."""
    me = psutil.Process()
    pids = {me.pid}
    for relatives in (me.parents, lambda: me.children(recursive=True)):
        try:
            pids.update(p.pid for p in relatives())
        except psutil.Error:
            pass
    return pids


#: A command line is matched on its first this many characters (a process's arguments can be megabytes).
CMDLINE_MAX = 32 * 1024
#: The longest one match may run, and one scan over every process: a pathological --match pattern
#: (nested repeats such as ``(a+)+$``) on a long command line must not hold the watch past --duration.
MATCH_TIMEOUT_S = 0.1
SCAN_BUDGET_S = 1.0
#: How many processes whose command line ran a match out of time are remembered (and not matched again).
SLOW_PIDS_MAX = 4096

_log = logging.getLogger("memtui")


class Matcher:
    """A --match pattern with bounded work: ``re`` syntax, each match cut at MATCH_TIMEOUT_S on at most
    CMDLINE_MAX characters. A command line that runs a match out of time counts as no match, once said."""

    def __init__(self, pattern: str) -> None:
        try:
            re.compile(pattern)  # re's syntax and messages; the timed engine below runs it (V0: re's semantics)
            self._regex = timed_re.compile(pattern, timed_re.V0)
        except (re.error, timed_re.error) as exc:
            raise UsageError(
                f"--match {shlex.quote(pattern)}: not a valid regular expression ({exc}); escape special "
                "characters with a backslash (\\( \\[ \\.) or put them in brackets ([(])"
            ) from None
        self.pattern = pattern
        self.slow: set[tuple[int, float]] = set()  # (pid, start time): a reused pid is matched again

    def __call__(self, cmdline: str, *, timeout: float = MATCH_TIMEOUT_S) -> bool | None:
        """Whether ``cmdline`` matches; None when the match ran out of time."""
        try:
            return self._regex.search(cmdline[:CMDLINE_MAX], timeout=max(timeout, 0.001)) is not None
        except TimeoutError:
            return None

    def too_slow(self, pid: int, started: float) -> None:
        if (pid, started) in self.slow or len(self.slow) >= SLOW_PIDS_MAX:
            return
        self.slow.add((pid, started))
        _log.warning(
            f"--match {self.pattern!r} ran over {MATCH_TIMEOUT_S:g}s on the command line of pid {pid}; "
            "that process is not watched: simplify the pattern (no nested repeats such as (a+)+)"
        )


@functools.lru_cache(maxsize=8)
def matcher(pattern: str) -> Matcher:
    """The Matcher for ``pattern`` (one per pattern, so the slow pids it learnt are kept across rescans);
    a pattern that is not a valid regex is a usage error (exit 2)."""
    return Matcher(pattern)


def _same_user(proc: psutil.Process) -> bool:
    try:
        return proc.uids().real == os.getuid()
    except psutil.Error:
        return False


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


def find_matching(
    pattern: str, children: bool, skip: Collection[int] = frozenset(), *, all_users: bool = False
) -> list[PidProbe]:
    """Probes on every process whose command line matches ``pattern``, except memtui's lineage and ``skip``.

    Only the current user's processes (same real uid) unless ``all_users``.
    """
    matches = matcher(pattern)
    exclude = memtui_lineage() | set(skip)
    deadline = time.monotonic() + SCAN_BUDGET_S
    probes = []
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        started = proc.info.get("create_time") or 0.0
        if proc.pid in exclude or (proc.pid, started) in matches.slow:
            continue
        if not all_users and not _same_user(proc):  # another user's command line is not even matched
            continue
        cmdline = " ".join(proc.info.get("cmdline") or ())
        left = deadline - time.monotonic()
        if not cmdline or left <= 0:  # out of budget: the next rescan looks again
            continue
        found = matches(cmdline, timeout=min(MATCH_TIMEOUT_S, left))
        if found is None and left >= MATCH_TIMEOUT_S:
            matches.too_slow(proc.pid, started)
        if not found:
            continue
        try:
            probes.append(PidProbe(proc.pid, children=children))
        except (ProcessGone, ProcessAccessDenied):
            continue
    return probes


def ranked_processes() -> list[tuple[int, int]]:
    """(RSS, pid) of the current user's (same real uid) processes, largest first; memtui's lineage excluded."""
    uid, exclude = os.getuid(), memtui_lineage()
    ranked = []
    for proc in psutil.process_iter(["uids", "memory_info"]):
        info = proc.info
        mine = info.get("uids") is not None and info["uids"].real == uid
        if proc.pid in exclude or not mine or info.get("memory_info") is None:
            continue
        ranked.append((info["memory_info"].rss, proc.pid))
    return sorted(ranked, reverse=True)


def top_users(n: int, children: bool) -> list[PidProbe]:
    """The current user's (same real uid) ``n`` largest processes by RSS, memtui's lineage excluded."""
    probes: list[PidProbe] = []
    for _rss, pid in ranked_processes():
        if len(probes) == n:
            break
        try:
            probes.append(PidProbe(pid, children=children))
        except (ProcessGone, ProcessAccessDenied):
            continue
    return probes


def rerank(
    ranked: list[tuple[int, int]], watched: Collection[int], pinned: Collection[int], n: int
) -> tuple[list[int], list[int]]:
    """(entering, leaving) pids that keep ``watched`` the ``n`` largest of ``ranked`` ((RSS, pid), largest first).

    Free places are filled largest first; a full list takes a newcomer only in place of its smallest
    member, and only past ``ENTER_MARGIN`` and ``ENTER_GAP``. ``pinned`` pids (stopped by memtui or the
    operator) never leave: memtui must resume what it stopped. Watched pids missing from ``ranked`` are
    left to the sampling, which sees them exit.
    """
    rss = {pid: size for size, pid in ranked}
    keep = set(watched)
    entering: list[int] = []
    leaving: list[int] = []
    for size, pid in ranked:
        if pid in keep:
            continue
        if len(keep) < n:
            keep.add(pid)
            entering.append(pid)
            continue
        movable = [(rss[p], p) for p in keep if p in rss and p not in pinned]
        if not movable:
            break
        smallest_rss, smallest = min(movable)
        if size <= max(smallest_rss * (1 + ENTER_MARGIN), smallest_rss + ENTER_GAP):
            break  # ranked is largest first: no later one would pass either
        keep.discard(smallest)
        keep.add(pid)
        entering.append(pid)
        if smallest in entering:
            entering.remove(smallest)
        else:
            leaving.append(smallest)
    return entering, leaving


@dataclass(frozen=True)
class TopN:
    """The default selection kept live: the user's ``n`` largest processes, re-ranked at each refresh."""

    n: int = TOP_N
    scan: Callable[[], list[tuple[int, int]]] = ranked_processes

    def plan(self, watched: Collection[int], pinned: Collection[int]) -> tuple[list[int], list[int], dict[int, int]]:
        """(entering pids, leaving pids, the RSS each was ranked at)."""
        ranked = self.scan()
        entering, leaving = rerank(ranked, watched, pinned, self.n)
        return entering, leaving, {pid: size for size, pid in ranked}


def discover(selection: Selection) -> list[PidProbe]:
    """The probes to start with; raises UsageError (exit 2) when there is nothing to watch."""
    if selection.match is not None:
        matcher(selection.match)  # a bad pattern is a usage error before anything else is looked at
    probes = [probe_pid(pid, selection.children) for pid in dict.fromkeys(selection.pids)]
    if selection.match is not None:
        probes += find_matching(
            selection.match, selection.children, skip={p.pid for p in probes}, all_users=selection.all_users
        )
        if not probes:
            whose = (
                "" if selection.all_users else (f" among the processes of user {_user()} (--all-users for everyone's)")
            )
            raise UsageError(
                f"no process matches {selection.match!r}{whose}; check with: pgrep -af {shlex.quote(selection.match)}"
            )
    if not selection.pids and selection.match is None:
        probes = top_users(selection.top_n, selection.children)
        if not probes:
            raise UsageError(f"no processes of user {_user()} to watch; pass --pid N or --match PATTERN")
    return probes
