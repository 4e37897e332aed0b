"""The headless parts of monitor mode: one log line per target per interval (its events), a summary.

The host (memtui.faces.headless) prints every event of the MonitorEngine,
TargetSampled included: that is the per-interval line of each target. Ctrl-C,
SIGTERM or SIGHUP ends the watch (memtui resumes any process it stopped); a
second Ctrl-C or SIGTERM exits at once, still resuming them first
(``MonitorEngine.emergency_exit``).
"""

from __future__ import annotations

from memtui.faces.headless import HeadlessParts
from memtui.records import MonitorReport


def summary_lines(report: MonitorReport) -> list[str]:
    return report.summary_lines()


HEADLESS = HeadlessParts(
    thread_name="memtui-monitor",
    stopping="ending the watch",
    summary=summary_lines,
)
