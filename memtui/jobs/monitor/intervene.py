"""What memtui may do to a watched process, and only when told to.

``--on-breaker none`` (the default) never signals anything. ``stop`` sends
SIGSTOP when a target's breaker opens and SIGCONT once its memory has stayed
below the reset level (the breaker half-opens); ``term`` sends SIGTERM. The
operator's pause/resume/terminate commands use the same function, so every
signal ends up as a recorded action. With ``--children`` the whole counted tree
is signalled: freezing only the parent would let its workers keep growing.

That function refuses, and says so in the action's error, to signal pid 1,
memtui itself or any ancestor of memtui (the shell, sudo, tmux, sshd that
started it), and another user's process unless ``--signal-other-users``.
"""

from __future__ import annotations

import enum
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil

from memtui.memory.breaker import BreakerState, BreakerTransition
from memtui.memory.pid_probe import PidProbe, ProcessGone
from memtui.memory.units import format_gb


class Policy(str, enum.Enum):
    NONE = "none"
    STOP = "stop"
    TERM = "term"


SIGNALS = {"stop": signal.SIGSTOP, "resume": signal.SIGCONT, "terminate": signal.SIGTERM}

#: Sends one signal to one process; psutil's own refuses a pid that now names another process.
Sender = Callable[[psutil.Process, int], None]


def send_signal(proc: psutil.Process, sig: int) -> None:
    proc.send_signal(sig)  # psutil checks the create time first: a reused pid is never signalled


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "?"


def protected_pids() -> dict[int, str]:
    """pid -> why memtui must never signal it: init, memtui itself and every ancestor of memtui.

    Computed afresh for each signal: the lineage only shrinks (an ancestor exits, memtui is
    reparented), and a stale set could name a pid that now belongs to someone else.
    """
    me = psutil.Process()
    protected = {1: "pid 1 is init", me.pid: f"pid {me.pid} is memtui itself"}
    # Raises psutil.Error when memtui cannot read its own lineage: signal_target then refuses everything.
    for depth, proc in enumerate(me.parents()):
        if proc.pid not in protected:
            whose = "memtui's own parent" if depth == 0 else "an ancestor of memtui"
            protected[proc.pid] = f"pid {proc.pid} is {whose} ({_name(proc)})"
    return protected


def user_name(uid: int) -> str:
    """The name of a uid (the uid as text when it has none)."""
    try:
        import pwd  # noqa: PLC0415 - POSIX only, like signals themselves

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def owner(proc: psutil.Process) -> str:
    """The user name of a process's real uid."""
    return user_name(proc.uids().real)


def refusal(proc: psutil.Process, *, other_users: bool, protected: Mapping[int, str] | None = None) -> str | None:
    """Why memtui must not signal ``proc`` (a text starting "refused: "), or None when it may.

    Never init, memtui or an ancestor of memtui; another user's process (real uid differs from
    memtui's) only with ``other_users`` (--signal-other-users). As root, every non-root process is
    another user's. Raises psutil.NoSuchProcess when the process has gone.
    """
    why = (protected_pids() if protected is None else protected).get(proc.pid)
    if why is not None:
        return f"refused: {why}"
    if not other_users and proc.uids().real != os.getuid():
        return (
            f"refused: pid {proc.pid} ({_name(proc)}) belongs to user {owner(proc)}, not "
            f"{user_name(os.getuid())}; pass --signal-other-users to allow it"
        )
    return None


@dataclass(frozen=True)
class Outcome:
    """What one signal_target call did: the pids that got the signal, and what went wrong (or None)."""

    sent: tuple[int, ...]
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def signal_target(
    probe: PidProbe,
    action: str,
    *,
    send: Sender = send_signal,
    ppids: Mapping[int, int] | None = None,
    other_users: bool = False,
) -> Outcome:
    """Send ``action``'s signal to the target (and its counted children): the one door every signal takes.

    Refused, and recorded in the outcome's error, never silently: init, memtui itself and its
    ancestors (also inside a --children tree), and without ``other_users`` another user's process.
    A refused target gets nothing; a refused child is left out while the rest of the tree is signalled.
    """
    sig = SIGNALS[action]
    try:
        procs = probe.processes(ppids)
    except ProcessGone:
        return Outcome((), "the process has exited")
    if action == "resume":
        procs.reverse()  # children first, so the parent finds them running
    try:
        protected = protected_pids()
    except psutil.Error as exc:  # fail closed: without the lineage, any pid could be memtui's parent
        return Outcome((), f"refused: memtui cannot read its own parent processes ({type(exc).__name__})")
    errors: list[str] = []
    sent: list[int] = []
    for proc in procs:
        try:
            refused = refusal(proc, other_users=other_users, protected=protected)
        except psutil.NoSuchProcess:
            if proc.pid == probe.pid:
                return Outcome(tuple(sent), "the process has exited")
            continue
        except psutil.Error:
            refused = f"refused: pid {proc.pid}: its owner cannot be read"
        if refused is not None:
            if proc.pid == probe.pid:
                return Outcome((), refused)  # nothing at all to a refused target, not even its children
            errors.append(refused)
            continue
        try:
            send(proc, sig)
        except psutil.NoSuchProcess:
            if proc.pid == probe.pid:
                return Outcome(tuple(sent), "the process has exited")
            continue
        except (psutil.AccessDenied, PermissionError):
            errors.append(f"permission denied for pid {proc.pid}")
            continue
        sent.append(proc.pid)
    return Outcome(tuple(sent), "; ".join(errors) or None)


def decide(
    policy: Policy, t: BreakerTransition, held_by: str | None, reset_bytes: int, max_bytes: int
) -> tuple[str, str] | None:
    """(action, reason) the policy takes on a breaker transition, or None."""
    if t.new is BreakerState.OPEN and t.old is not BreakerState.OPEN:
        why = f"breaker open at {format_gb(t.rss)} (breaker {format_gb(max_bytes)})"
        if policy is Policy.STOP and held_by is None:
            return "stop", f"{why}; resumes below {format_gb(reset_bytes)}"
        if policy is Policy.TERM:
            return "terminate", why
    if t.new is BreakerState.HALF_OPEN and held_by == "breaker":
        return "resume", f"memory back below reset level {format_gb(reset_bytes)} ({format_gb(t.rss)})"
    return None
