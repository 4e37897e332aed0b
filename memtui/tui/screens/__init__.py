"""Modal screens: thresholds, batch limits, quit confirmation, help."""

from memtui.tui.screens.batch_limits import BatchLimitsScreen
from memtui.tui.screens.help import HelpScreen
from memtui.tui.screens.quit_confirm import QuitScreen
from memtui.tui.screens.thresholds import ThresholdsScreen

__all__ = ["BatchLimitsScreen", "HelpScreen", "QuitScreen", "ThresholdsScreen"]
