"""Change the batch-size limits mid-run: the size under a warning, and the size when memory is normal."""

from __future__ import annotations

from memtui.tui.screens.form import Field, TwoFieldScreen


class BatchLimitsScreen(TwoFieldScreen):
    TITLE_TEXT = "Batch size limits (domains per batch)"
    FIELDS = (
        Field("batch-min", "Minimum", "domains per batch at warning"),
        Field("batch-max", "Maximum", "domains per batch when normal"),
    )
    HINT = "Whole numbers, 1 or more, minimum <= maximum. Enter applies, Esc cancels, Tab moves."
