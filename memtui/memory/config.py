"""MemoryConfig: the thresholds and pacing of the memory core, as one validated record.

Upper bounds (``BOUNDS``), so a typo like ``1e300`` is a one-line error, not an
overflow deep in a timed wait: sizes at most 1 PiB (1048576 GB); sampling,
holds and backoffs at most 1 day; the breaker timeout at most 30 days; batch
sizes at most 100000; ``inf`` and ``nan`` never.

Where the values come from (defaults, a TOML file, the environment, flags) and how
defaults are fitted under the memory limit is ``memtui.memory.config_layers``. Its
validation errors name each setting as the operator wrote it (``--max-memory``,
``MEMTUI_MAX_MEMORY``, ``config.toml: max-memory``): it passes a ``Naming`` to
``check``; a MemoryConfig built directly names its fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from types import SimpleNamespace
from typing import Any

from memtui.errors import ConfigError
from memtui.memory.units import GB

DAY_S = 86_400.0
#: field -> (largest accepted value, how the bound reads in a message)
BOUNDS: dict[str, tuple[float, str]] = {
    "max_memory_gb": (1024.0**2, "1048576GB (1024TB)"),
    "warning_memory_gb": (1024.0**2, "1048576GB (1024TB)"),
    "reset_memory_gb": (1024.0**2, "1048576GB (1024TB)"),
    "sample_interval_s": (DAY_S, "86400 s (1 day)"),
    "breaker_timeout_s": (30 * DAY_S, "2592000 s (30 days)"),
    "reset_hold_s": (DAY_S, "86400 s (1 day)"),
    "reset_hold_max_s": (DAY_S, "86400 s (1 day)"),
    "backoff_initial_s": (DAY_S, "86400 s (1 day)"),
    "backoff_max_s": (DAY_S, "86400 s (1 day)"),
    "batch_size_max": (100_000, "100000"),
    "batch_size_min": (100_000, "100000"),
    "memory_error_retries": (1_000_000, "1000000"),
    "history_size": (10_000_000, "10000000"),
}
#: Longest --duration / --monitor-interval the CLI accepts (30 days).
DURATION_MAX_S = 30 * DAY_S


#: config field -> the setting's name, as in flags, environment variables and TOML keys.
SETTING_NAMES: dict[str, str] = {
    "max_memory_gb": "max-memory",
    "warning_memory_gb": "warning-memory",
    "reset_memory_gb": "reset-memory",
    "batch_size_max": "batch-max",
    "batch_size_min": "batch-min",
    "sample_interval_s": "sample-interval",
    "breaker_timeout_s": "breaker-timeout",
    "reset_hold_s": "reset-hold",
    "reset_hold_max_s": "reset-hold-max",
    "warning_hysteresis": "warning-hysteresis",
    "backoff_initial_s": "backoff-initial",
    "backoff_max_s": "backoff-max",
}


@dataclass(frozen=True)
class Naming:
    """How validation messages name each field: as the operator wrote it, or a default's name."""

    labels: Mapping[str, str] = dc_field(default_factory=dict)
    fixes: Mapping[str, str] = dc_field(default_factory=dict)

    def label(self, field: str) -> str:
        return self.labels.get(field, field)

    def describe(self, field: str) -> str:
        """'max memory (--max-memory)': what the setting is, then where it came from."""
        return f"{SETTING_NAMES.get(field, field).replace('-', ' ')} ({self.label(field)})"

    def fix(self, field: str) -> str:
        """What to change: the source that set it, or (for a default) the flag that would."""
        return self.fixes.get(field, self.label(field))


@dataclass(frozen=True)
class MemoryConfig:
    """Thresholds in GB (2**30 bytes), batch sizes in items (domains for the cache job)."""

    max_memory_gb: float = 1.5
    warning_memory_gb: float = 1.0
    batch_size_max: int = 5
    batch_size_min: int = 1
    sample_interval_s: float = 0.1
    #: How long an open breaker may wait for memory to come back before the work gives up.
    breaker_timeout_s: float = 300.0
    #: An open breaker half-opens only once memory stays below this level (None: the warning level).
    reset_memory_gb: float | None = None
    #: ... for at least this long; doubled for each consecutive trip, up to reset_hold_max_s.
    reset_hold_s: float = 1.0
    reset_hold_max_s: float = 30.0
    #: WARNING clears only below warning * (1 - warning_hysteresis), held for reset_hold_s.
    warning_hysteresis: float = 0.05
    #: Exponential backoff while the breaker is open or after a MemoryError.
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 8.0
    #: Consecutive MemoryErrors on a single item before the work gives up.
    memory_error_retries: int = 5
    #: Samples kept for sparklines (60 s at the default interval).
    history_size: int = 600

    def __post_init__(self) -> None:
        self.validate()

    # -- derived levels, in bytes -------------------------------------------------
    @property
    def max_bytes(self) -> int:
        return int(self.max_memory_gb * GB)

    @property
    def warning_bytes(self) -> int:
        return int(self.warning_memory_gb * GB)

    @property
    def warning_clear_bytes(self) -> int:
        return int(self.warning_memory_gb * (1 - self.warning_hysteresis) * GB)

    @property
    def reset_bytes(self) -> int:
        level = self.warning_memory_gb if self.reset_memory_gb is None else self.reset_memory_gb
        return int(level * GB)

    def replace(self, **changes: Any) -> MemoryConfig:
        """A validated copy with ``changes`` applied (the config itself never mutates)."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ConfigError (one line) for a value out of range; fields named as fields (``check``)."""
        check({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, Naming())


def check(values: Mapping[str, Any], naming: Naming) -> None:
    """Raise ConfigError (one line) for the first value out of range, each setting worded by ``naming``:
    as the operator wrote it (``config_layers.resolve_config`` passes where each came from) or, by
    default, as the field is called."""
    name, fix = naming.describe, naming.fix
    c = SimpleNamespace(**values)

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def bad(msg: str) -> ConfigError:
        return ConfigError(msg)

    def bounded(field: str, value: float) -> None:
        most, text = BOUNDS[field]
        if value > most:
            raise bad(f"{name(field)} must be at most {text}, got {value!r}; lower {fix(field)}")

    for field in (
        "max_memory_gb",
        "warning_memory_gb",
        "sample_interval_s",
        "breaker_timeout_s",
        "reset_hold_s",
        "reset_hold_max_s",
        "backoff_initial_s",
        "backoff_max_s",
    ):
        value = getattr(c, field)
        # NaN fails "> 0"; infinity would overflow the int byte levels and timed waits derived from it.
        if number(value) and not math.isfinite(value):
            raise bad(f"{name(field)} must be a finite number, got {value!r}")
        if not number(value) or not value > 0:
            raise bad(f"{name(field)} must be a positive number, got {value!r}")
        bounded(field, value)
    for field in ("batch_size_max", "batch_size_min", "history_size", "memory_error_retries"):
        value = getattr(c, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(f"{name(field)} must be a whole number >= 1, got {value!r}")
        bounded(field, value)
    w, m = "warning_memory_gb", "max_memory_gb"
    if c.warning_memory_gb >= c.max_memory_gb:
        raise bad(
            f"warning memory {c.warning_memory_gb:.2f}GB must be below max memory "
            f"{c.max_memory_gb:.2f}GB; lower {fix(w)} or raise {fix(m)}"
        )
    lo, hi = "batch_size_min", "batch_size_max"
    if c.batch_size_min > c.batch_size_max:
        raise bad(f"batch size min {c.batch_size_min} is above max {c.batch_size_max}; make {fix(lo)} <= {fix(hi)}")
    r = "reset_memory_gb"
    if c.reset_memory_gb is not None:
        if number(c.reset_memory_gb) and math.isfinite(c.reset_memory_gb):
            bounded(r, c.reset_memory_gb)
        if not (
            number(c.reset_memory_gb) and math.isfinite(c.reset_memory_gb) and 0 < c.reset_memory_gb < c.max_memory_gb
        ):
            shown = f"{c.reset_memory_gb:.2f}GB" if number(c.reset_memory_gb) else repr(c.reset_memory_gb)
            raise bad(
                f"reset memory {shown} must be between 0 and max memory "
                f"{c.max_memory_gb:.2f}GB; lower {fix(r)} or raise {fix(m)}"
            )
    h = "warning_hysteresis"
    if not (number(c.warning_hysteresis) and 0 <= c.warning_hysteresis < 1):
        raise bad(f"{name(h)} must be in [0, 1), got {c.warning_hysteresis!r}")
    lo, hi = "backoff_initial_s", "backoff_max_s"
    if c.backoff_max_s < c.backoff_initial_s:
        raise bad(
            f"backoff max {c.backoff_max_s}s must be >= backoff initial {c.backoff_initial_s}s; "
            f"raise {fix(hi)} or lower {fix(lo)}"
        )
    lo, hi = "reset_hold_s", "reset_hold_max_s"
    if c.reset_hold_max_s < c.reset_hold_s:
        # Otherwise the "growing" hold after repeated trips would be shorter than the first one.
        raise bad(
            f"reset hold max {c.reset_hold_max_s}s must be >= reset hold {c.reset_hold_s}s; "
            f"raise {fix(hi)} or lower {fix(lo)}"
        )
