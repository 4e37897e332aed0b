"""Change the warning, breaker and reset levels mid-run (all at once, validated together)."""

from __future__ import annotations

from memtui.tui.screens.form import Field, TwoFieldScreen


class ThresholdsScreen(TwoFieldScreen):
    TITLE_TEXT = "Memory thresholds"
    FIELDS = (
        Field("warning", "Warning", "batches shrink to the minimum"),
        Field("breaker", "Breaker", "no new batches until memory is back"),
        Field("reset", "Reset", "an open breaker closes below this"),
    )
    HINT = (
        "GB (1.2), MB (800MB) or % of the memory limit (75%); an empty reset follows the warning level. "
        "Enter applies, Esc cancels, Tab moves."
    )
