"""Moved: the headless face is memtui.faces.headless (one host for any Engine); the job's lines are
memtui.faces.job. This module only keeps old imports working (``setup_logging`` and friends)."""

from memtui.faces.headless import PROGRESS_EVERY_S, HeadlessFace, setup_logging
from memtui.faces.job import progress_line, summary_lines
from memtui.memory.units import format_duration

__all__ = ["PROGRESS_EVERY_S", "HeadlessFace", "format_duration", "progress_line", "setup_logging", "summary_lines"]
