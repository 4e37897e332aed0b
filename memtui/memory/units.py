"""Byte/GB conversions, threshold parsing and durations shared by the core and its faces.

memtui's "GB" is a binary gigabyte (2**30 bytes), as in `free -g` and cgroup
limits; the original guide's 1.5 GB breaker is 1.5 * 2**30 bytes. One convention
everywhere (panels, dialogs, logs, report): GB and MB mean 2**30 and 2**20 bytes,
written right after the number ("1.50GB", "45MB"); never GiB/MiB, never a space.
"""

from __future__ import annotations

GB = 1 << 30
MB = 1 << 20


def to_gb(n_bytes: float) -> float:
    return n_bytes / GB


def gb_to_bytes(gb: float) -> int:
    return round(gb * GB)


def format_gb(n_bytes: float, digits: int = 2) -> str:
    return f"{n_bytes / GB:.{digits}f}GB"


def format_bytes(n_bytes: float) -> str:
    """Human size in memtui's units (binary KB/MB/GB/TB, no space), for limits and free disk."""
    value = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m07s``, ``2h05m``, ``6d10h``; ``?`` when unknown. Every face says durations this way."""
    if seconds is None:
        return "?"
    seconds = round(seconds)
    if seconds >= 2 * 86400:  # "154h32m" reads as noise; days are what a person counts in
        days, rest = divmod(seconds, 86400)
        return f"{days}d{rest // 3600:02d}h"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def parse_gb(text: str | float | int, *, limit_bytes: int | None = None, what: str = "value") -> float:
    """Parse '1.5', '1.5GB', '800MB' or '75%' (of ``limit_bytes``) into GB.

    Raises ValueError with a one-line message naming ``what``.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    raw = str(text).strip()
    lowered = raw.lower().replace(" ", "")
    try:
        if lowered.endswith("%"):
            percent = float(lowered[:-1])
            if limit_bytes is None:
                raise ValueError(f"{what}: {raw!r} is a percentage but no memory limit is known")
            if not 0 < percent <= 100:
                raise ValueError(f"{what}: {raw!r} must be a percentage between 0 and 100")
            return limit_bytes * percent / 100 / GB
        for suffix, scale in (
            ("gib", 1.0),
            ("gb", 1.0),
            ("g", 1.0),
            ("mib", 1 / 1024),
            ("mb", 1 / 1024),
            ("m", 1 / 1024),
        ):
            if lowered.endswith(suffix):
                return float(lowered[: -len(suffix)]) * scale
        return float(lowered)
    except ValueError as exc:
        if str(exc).startswith(what):
            raise
        raise ValueError(
            f"{what}: {raw!r} is not a memory size; use GB (1.5), MB (800MB) or a percent of the limit (75%)"
        ) from None
