"""Change the warning and breaker levels mid-run (both at once, validated together)."""

from __future__ import annotations

from memtui.tui.screens.form import Field, TwoFieldScreen


class ThresholdsScreen(TwoFieldScreen):
    TITLE_TEXT = "Memory thresholds"
    FIELDS = (Field("warning", "Warning", "batches shrink to the minimum"),
              Field("breaker", "Breaker", "no new batches until memory is back"))
    HINT = "GB (1.2), MB (800MB) or % of the memory limit (75%). Enter applies, Esc cancels, Tab moves."
