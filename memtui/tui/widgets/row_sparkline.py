"""A process's recent RSS in a few block glyphs, for one cell of the process table.

The scale is the row's own lowest sample at the bottom and at least ``MIN_SPAN``
above it at the top: a steady process draws a flat line of the lowest block
(a few MB of noise is not a cliff), a growing one a ramp.
"""

from __future__ import annotations

from collections.abc import Sequence

from memtui.memory.units import MB

BLOCKS = "▁▂▃▄▅▆▇█"
#: The smallest span the glyphs stretch over, so noise stays flat.
MIN_SPAN = 32 * MB


def row_sparkline(values: Sequence[int], width: int) -> str:
    """The last ``width`` samples as glyphs, left-padded with spaces while the history is shorter."""
    recent = list(values[-width:]) if width > 0 else []
    if not recent:
        return " " * max(width, 0)
    low = min(recent)
    span = max(max(recent) - low, MIN_SPAN)
    top = len(BLOCKS) - 1
    glyphs = "".join(BLOCKS[min(top, round((v - low) / span * top))] for v in recent)
    return glyphs.rjust(width)
