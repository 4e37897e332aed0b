"""A wait read from an environment variable, checked once: one wording for every such setting."""

from __future__ import annotations

import math
import os

from memtui.errors import ConfigError

#: No wait memtui reads from the environment may exceed a day: a typo must not become a hang.
MAX_S = 86_400.0


def env_seconds(name: str, default: float) -> float:
    """``name``'s value in seconds (unset or empty: ``default``); anything but a number in (0, a day] is a
    ConfigError (exit 2) naming the variable and how to fix it."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > MAX_S:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds above 0; set it like {default:.0f} or unset it")
    return value
