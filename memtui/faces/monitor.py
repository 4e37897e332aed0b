"""The headless parts of monitor mode: one log line per target per interval (its events), a summary.

The host (memtui.faces.headless) prints every event of the MonitorEngine,
TargetSampled included: that is the per-interval line of each target. Ctrl-C,
SIGTERM or SIGHUP ends the watch (memtui resumes any process it stopped); a
second Ctrl-C or SIGTERM exits at once, still resuming them first
(``MonitorEngine.emergency_exit``).
"""

from __future__ import annotations

from typing import Any

from memtui.faces.headless import HeadlessParts


def summary_lines(report: dict[str, Any]) -> list[str]:
    r = report
    lines = [
        f"Monitor {r['status']} ({r['end_reason']}) after {r['duration_s']:.1f}s: {r['selection']}, "
        f"every {r['interval_s']:g}s, on breaker: {r['on_breaker']}"
    ]
    for t in r["targets"]:
        acts = ", ".join(f"{a['action']}{'' if a['ok'] else ' (failed)'}" for a in t["actions"]) or "none"
        lines.append(
            f"  pid {t['pid']} {t['name']}: {t['state']} · now {t['memory_usage_gb']:.2f}GB · peak "
            f"{t['peak_memory_gb']:.2f}GB · warnings {t['memory_warnings']} · trips {t['breaker_trips']} "
            f"· actions: {acts}"
        )
    limit = f"memory limit {r['limit_gb']:.2f}GB from {r['limit_source']} · " if r.get("limit_gb") else ""
    lines.append(
        f"{limit}thresholds: warning {r['warning_memory_gb']:.2f}GB, breaker {r['max_memory_gb']:.2f}GB, "
        f"reset below {r['reset_memory_gb']:.2f}GB"
    )
    return lines


HEADLESS = HeadlessParts(
    thread_name="memtui-monitor",
    stopping="ending the watch",
    summary=summary_lines,
)
