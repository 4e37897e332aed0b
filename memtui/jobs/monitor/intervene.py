"""What memtui may do to a watched process, and only when told to.

``--on-breaker none`` (the default) never signals anything. ``stop`` sends
SIGSTOP when a target's breaker opens and SIGCONT once its memory has stayed
below the reset level (the breaker half-opens); ``term`` sends SIGTERM. The
operator's pause/resume/terminate commands use the same function, so every
signal ends up as a recorded action. With ``--children`` the whole counted tree
is signalled: freezing only the parent would let its workers keep growing.
"""

from __future__ import annotations

import enum
import os
import signal
from collections.abc import Callable, Mapping

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
    proc.send_signal(sig)


def signal_target(probe: PidProbe, action: str, *, send: Sender = send_signal,
                  ppids: Mapping[int, int] | None = None) -> str | None:
    """Send ``action``'s signal to the target (and its counted children); returns an error text or None."""
    sig = SIGNALS[action]
    try:
        procs = probe.processes(ppids)
    except ProcessGone:
        return "the process has exited"
    if action == "resume":
        procs.reverse()  # children first, so the parent finds them running
    errors = []
    for proc in procs:
        if proc.pid == os.getpid():
            continue  # a --children tree can hold memtui itself: never freeze or kill the watcher
        try:
            send(proc, sig)
        except psutil.NoSuchProcess:
            if proc.pid == probe.pid:
                return "the process has exited"
        except (psutil.AccessDenied, PermissionError):
            errors.append(f"permission denied for pid {proc.pid}")
    return "; ".join(errors) or None


def decide(policy: Policy, t: BreakerTransition, held_by: str | None,
           reset_bytes: int, max_bytes: int) -> tuple[str, str] | None:
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
