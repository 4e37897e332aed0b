"""MemoryConfig: the thresholds and pacing of the memory core, and how they are layered.

Precedence, lowest to highest: defaults, a TOML file, environment variables
(MEMTUI_MAX_MEMORY, ...), command-line flags. Sizes are GB or a percent of the
discovered memory limit ("75%").
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from memtui.errors import ConfigError
from memtui.memory.units import GB, parse_gb


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

    def replace(self, **changes: Any) -> "MemoryConfig":
        """A validated copy with ``changes`` applied (the config itself never mutates)."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(msg)

        for name in ("max_memory_gb", "warning_memory_gb", "sample_interval_s", "breaker_timeout_s",
                     "reset_hold_s", "reset_hold_max_s", "backoff_initial_s", "backoff_max_s"):
            value = getattr(self, name)
            # NaN fails "> 0"; infinity would overflow the int byte levels derived from it.
            if (not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
                    or not math.isfinite(value)):
                raise bad(f"{name} must be a positive number, got {value!r}")
        for name in ("batch_size_max", "batch_size_min", "history_size", "memory_error_retries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(f"{name} must be a whole number >= 1, got {value!r}")
        if self.warning_memory_gb >= self.max_memory_gb:
            raise bad(
                f"warning memory {self.warning_memory_gb:.2f}GB must be below max memory "
                f"{self.max_memory_gb:.2f}GB; lower --warning-memory or raise --max-memory"
            )
        if self.batch_size_min > self.batch_size_max:
            raise bad(
                f"batch size min {self.batch_size_min} is above max {self.batch_size_max}; "
                "make --batch-min <= --batch-max"
            )
        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        if self.reset_memory_gb is not None and not (number(self.reset_memory_gb)
                                                     and 0 < self.reset_memory_gb < self.max_memory_gb):
            raise bad(f"reset memory {self.reset_memory_gb}GB must be between 0 and max memory {self.max_memory_gb}GB")
        if not (number(self.warning_hysteresis) and 0 <= self.warning_hysteresis < 1):
            raise bad(f"warning_hysteresis must be in [0, 1), got {self.warning_hysteresis!r}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise bad(f"backoff_max_s {self.backoff_max_s}s must be >= backoff_initial_s {self.backoff_initial_s}s")
        if self.reset_hold_max_s < self.reset_hold_s:
            # Otherwise the "growing" hold after repeated trips would be shorter than the first one.
            raise bad(f"reset_hold_max_s {self.reset_hold_max_s}s must be >= reset_hold_s {self.reset_hold_s}s")


# -- layering ---------------------------------------------------------------------

def _int(text: Any, *, what: str, limit_bytes: int | None) -> int:
    try:
        value = int(str(text).strip()) if not isinstance(text, int) else text
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a whole number") from None
    return value


def _float(text: Any, *, what: str, limit_bytes: int | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {text!r} is not a number (seconds)") from None


def _fraction(text: Any, *, what: str, limit_bytes: int | None) -> float:
    """0.05 or "5%" (a fraction of the warning level, not of the memory limit)."""
    raw = str(text).strip()
    try:
        return float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a fraction (0.05 or 5%)") from None


def _gb(text: Any, *, what: str, limit_bytes: int | None) -> float:
    return parse_gb(text, limit_bytes=limit_bytes, what=what)


#: setting name (as in flags, env vars and TOML keys) -> (config field, parser)
SETTINGS: dict[str, tuple[str, Callable[..., Any]]] = {
    "max-memory": ("max_memory_gb", _gb),
    "warning-memory": ("warning_memory_gb", _gb),
    "reset-memory": ("reset_memory_gb", _gb),
    "batch-max": ("batch_size_max", _int),
    "batch-min": ("batch_size_min", _int),
    "sample-interval": ("sample_interval_s", _float),
    "breaker-timeout": ("breaker_timeout_s", _float),
    "reset-hold": ("reset_hold_s", _float),
    "reset-hold-max": ("reset_hold_max_s", _float),
    "warning-hysteresis": ("warning_hysteresis", _fraction),
    "backoff-initial": ("backoff_initial_s", _float),
    "backoff-max": ("backoff_max_s", _float),
}
_FIELD_TO_SETTING = {field: name for name, (field, _) in SETTINGS.items()}


def threshold_changes(*, warning: str | float | None = None, max: str | float | None = None,
                      limit_bytes: int | None = None) -> dict[str, float]:
    """MemoryConfig changes for new warning/breaker levels typed by an operator (GB, MB or a percent)."""
    changes: dict[str, float] = {}
    try:
        if warning is not None:
            changes["warning_memory_gb"] = parse_gb(warning, limit_bytes=limit_bytes, what="warning threshold")
        if max is not None:
            changes["max_memory_gb"] = parse_gb(max, limit_bytes=limit_bytes, what="breaker threshold")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return changes


def env_name(setting: str) -> str:
    return "MEMTUI_" + setting.upper().replace("-", "_")


def _apply(values: dict[str, Any], setting: str, raw: Any, *, where: str, limit_bytes: int | None) -> None:
    field, parse = SETTINGS[setting]
    try:
        values[field] = parse(raw, what=where, limit_bytes=limit_bytes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_config(
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    limit_bytes: int | None = None,
    base: MemoryConfig | None = None,
) -> MemoryConfig:
    """Layer defaults < TOML file < environment < flags into a validated MemoryConfig.

    ``flags`` maps setting names ("max-memory") to raw values; None means "not given".
    """
    values: dict[str, Any] = dataclasses.asdict(base or MemoryConfig())
    if file is not None:
        for setting, raw in _read_toml(Path(file)).items():
            _apply(values, setting, raw, where=f"{file}: {setting}", limit_bytes=limit_bytes)
    environ = os.environ if env is None else env
    for setting in SETTINGS:
        name = env_name(setting)
        if environ.get(name, "").strip():
            _apply(values, setting, environ[name], where=f"environment variable {name}", limit_bytes=limit_bytes)
    for setting, raw in (flags or {}).items():
        if raw is not None:
            _apply(values, setting, raw, where=f"--{setting}", limit_bytes=limit_bytes)
    try:
        return MemoryConfig(**values)
    except TypeError as exc:  # pragma: no cover - a programming error, not user input
        raise ConfigError(str(exc)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys or a [memory] table, flag or field names."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check --config or MEMTUI_CONFIG") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.__class__.__name__}); check its permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the file") from None
    if "memory" in data:
        table = data["memory"]  # a shared file: only [memory] is ours, other tables belong to other tools
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: 'memory' must be a table ([memory])")
    else:
        table = {k: v for k, v in data.items() if not isinstance(v, dict)}
    out: dict[str, Any] = {}
    for key, raw in table.items():
        setting = key.replace("_", "-")
        setting = _FIELD_TO_SETTING.get(key, setting)
        if setting not in SETTINGS:
            known = ", ".join(sorted(SETTINGS))
            raise ConfigError(f"config file {path}: unknown setting {key!r}; known settings: {known}")
        out[setting] = raw
    return out
