"""Monitor mode's engine: watch the memory of processes memtui did not start.

targets (what to watch) -> PidProbe (memtui.memory) -> tracker (numbers and a
breaker per target) -> intervene (signals, only when asked) -> engine (the
loop, commands, snapshots, events). The engine is an Engine (memtui.engine);
the faces that host it are memtui.faces (headless, TUI), and memtui.cli builds
it from the flags. Nothing here imports a face or the CLI.
"""

from memtui.jobs.monitor.engine import MonitorEngine, MonitorSnapshot
from memtui.jobs.monitor.intervene import Policy
from memtui.jobs.monitor.targets import Selection
from memtui.jobs.monitor.tracker import Action, TargetSnapshot, TargetState

__all__ = ["Action", "MonitorEngine", "MonitorSnapshot", "Policy", "Selection", "TargetSnapshot", "TargetState"]
