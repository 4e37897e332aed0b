"""The whole run's RSS for the big chart, at bounded memory and drawing cost.

The monitor keeps only the last minute of samples (enough for the sparkline);
a night-long run needs its whole curve. Points are per-bucket peaks (a spike
must never be averaged away); when the buffer fills, neighbours merge and the
bucket doubles, so cost stays flat however long the run.
"""

from __future__ import annotations

from collections.abc import Iterable


class RssHistory:
    def __init__(self, max_points: int = 600, bucket_s: float = 1.0) -> None:
        self.max_points = max_points
        self.bucket_s = bucket_s
        self.points: list[tuple[float, int]] = []  # (bucket start, peak RSS in it)
        self._last_t = float("-inf")

    def extend(self, samples: Iterable[tuple[float, int]]) -> bool:
        """Add the samples newer than the last one seen; True if anything was added."""
        added = False
        for t, rss in samples:
            if t <= self._last_t:
                continue
            self._last_t = t
            added = True
            if self.points and t < self.points[-1][0] + self.bucket_s:
                start, peak = self.points[-1]
                self.points[-1] = (start, max(peak, rss))
            else:
                self.points.append((t, rss))
                if len(self.points) > self.max_points:
                    self._halve()
        return added

    def _halve(self) -> None:
        pts = self.points
        self.points = [(pts[i][0], max(p for _, p in pts[i : i + 2])) for i in range(0, len(pts), 2)]
        self.bucket_s *= 2
