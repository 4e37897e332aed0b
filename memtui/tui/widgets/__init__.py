"""One widget per file. Each panel has ``show(snapshot)``: the app polls the runner and hands
every panel the same immutable RunSnapshot, so panels never touch the job."""

from memtui.tui.widgets.batch_panel import BatchPanel
from memtui.tui.widgets.breaker_panel import BreakerPanel
from memtui.tui.widgets.gc_log import GcLog
from memtui.tui.widgets.memory_chart import MemoryChart
from memtui.tui.widgets.memory_panel import MemoryPanel
from memtui.tui.widgets.memory_sparkline import MemorySparkline
from memtui.tui.widgets.progress_panel import ProgressPanel
from memtui.tui.widgets.report_banner import ReportBanner
from memtui.tui.widgets.run_header import RunHeader

__all__ = [
    "BatchPanel",
    "BreakerPanel",
    "GcLog",
    "MemoryChart",
    "MemoryPanel",
    "MemorySparkline",
    "ProgressPanel",
    "ReportBanner",
    "RunHeader",
]
