"""``memtui run --mode monitor``: from parsed flags to a watch, a face and an exit code.

Exit codes: 0 the watch ended (duration reached, every explicit target
exited); 130 stopped by Ctrl-C, SIGTERM, SIGHUP or quit; 2 bad usage (a --pid
that does not exist at start, a --match that is not a valid regex or matches
nothing), raised as UsageError for the CLI to print in one line.
"""

from __future__ import annotations

import argparse

from memtui.jobs.monitor.engine import MonitorEngine
from memtui.jobs.monitor.headless import MonitorHeadless, summary_lines
from memtui.jobs.monitor.targets import Selection, discover, find_matching
from memtui.memory.monitor import MemoryMonitor


def build_engine(args: argparse.Namespace, monitor: MemoryMonitor) -> MonitorEngine:
    """Resolve the targets (UsageError if there are none) and build the engine from the flags."""
    selection = Selection(pids=tuple(args.pid), match=args.match, children=args.children,
                          all_users=getattr(args, "all_users", False))
    probes = discover(selection)
    rescan = None
    if selection.match is not None:
        pattern = selection.match
        rescan = lambda known: find_matching(pattern, selection.children, skip=known,  # noqa: E731
                                             all_users=selection.all_users)
    return MonitorEngine(
        probes, monitor.config, interval_s=args.monitor_interval, duration_s=args.duration,
        policy=args.on_breaker, children=args.children, selection=selection.describe(),
        # A --match watch waits for new matches; explicit pids and the default list end when all exited.
        end_when_all_exit=selection.match is None, rescan=rescan, limit=monitor.limit,
        signal_other_users=getattr(args, "signal_other_users", False))


def run_monitor_mode(args: argparse.Namespace, monitor: MemoryMonitor) -> int:
    from memtui.cli import run_face  # noqa: PLC0415 - cli imports this module lazily

    engine = build_engine(args, monitor)
    return run_face(args, tui=lambda: _run_tui(engine, args.theme),
                    headless=lambda: MonitorHeadless(engine).run(), summary=summary_lines)


def _run_tui(engine, theme):
    from memtui.tui.monitor_app import run_monitor_tui  # noqa: PLC0415 - the UI loads only for the TUI

    return run_monitor_tui(engine, theme=theme)
