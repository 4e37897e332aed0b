"""Monitor mode: watch the memory of processes memtui did not start.

targets (what to watch) -> PidProbe (memtui.memory) -> tracker (numbers and a
breaker per target) -> intervene (signals, only when asked) -> engine (the
loop, commands, snapshots, events) -> a face (headless here, the TUI in
memtui.tui.monitor_app).
"""

from memtui.jobs.monitor.engine import MonitorEngine, MonitorSnapshot
from memtui.jobs.monitor.intervene import Policy
from memtui.jobs.monitor.mode import run_monitor_mode
from memtui.jobs.monitor.targets import Selection
from memtui.jobs.monitor.tracker import Action, TargetSnapshot, TargetState

__all__ = ["Action", "MonitorEngine", "MonitorSnapshot", "Policy", "Selection", "TargetSnapshot", "TargetState",
           "run_monitor_mode"]
