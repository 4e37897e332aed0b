"""MemoryConfig: the thresholds and pacing of the memory core, and how they are layered.

Precedence, lowest to highest: defaults, a TOML file, environment variables
(MEMTUI_MAX_MEMORY, ...), command-line flags. Sizes are GB or a percent of the
discovered memory limit ("75%").

Defaults never exceed the discovered memory limit (``resolve_config``): a
default breaker is lowered to ``BREAKER_FRACTION`` of the limit, a default
warning level to ``WARNING_RATIO`` of the breaker. Values the operator typed
are kept, with a warning when they are above the limit.

Upper bounds (``BOUNDS``), so a typo like ``1e300`` is a one-line error, not an
overflow deep in a timed wait: sizes at most 1 PiB (1048576 GB); sampling,
holds and backoffs at most 1 day; the breaker timeout at most 30 days; batch
sizes at most 100000; ``inf`` and ``nan`` never.

Validation errors name each setting as the operator wrote it (``--max-memory``,
``MEMTUI_MAX_MEMORY``, ``config.toml: max-memory``) when it came through
``load_config``; a MemoryConfig built directly names its fields.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from memtui.errors import ConfigError
from memtui.memory.settings_file import read_toml_file
from memtui.memory.units import GB, parse_gb

#: A default breaker is lowered to this fraction of the discovered memory limit. The other
#: 15% is room the breaker cannot see coming: RSS grows between two samples by up to one
#: sub-batch of activations (~0.1 GB measured at the default token budget), and the kernel
#: charges page tables, slab and hot file pages (shared libraries, mmapped weights) to the
#: same cgroup. Measured: all-MiniLM-L6-v2 peaks at 0.61-0.71 GB RSS, so a 1 GB container
#: gets a 0.85 GB breaker that its run never reaches.
BREAKER_FRACTION = 0.85
#: A default warning level sits at this fraction of the breaker: the defaults' own ratio (1.0 / 1.5).
WARNING_RATIO = 1.0 / 1.5
#: ... but not below the job's floor while that stays under this fraction of the breaker.
FLOOR_ROOM = 0.9

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


@dataclass(frozen=True)
class _Naming:
    """How validation messages name each field: as the operator wrote it, or a default's name."""

    labels: Mapping[str, str] = dc_field(default_factory=dict)
    fixes: Mapping[str, str] = dc_field(default_factory=dict)

    def label(self, field: str) -> str:
        return self.labels.get(field, field)

    def describe(self, field: str) -> str:
        """'max memory (--max-memory)': what the setting is, then where it came from."""
        return f"{_FIELD_TO_SETTING.get(field, field).replace('-', ' ')} ({self.label(field)})"

    def fix(self, field: str) -> str:
        """What to change: the source that set it, or (for a default) the flag that would."""
        return self.fixes.get(field, self.label(field))


_NAMING: contextvars.ContextVar[_Naming] = contextvars.ContextVar(
    "memtui_config_naming",
    default=_Naming(),  # noqa: B039 - the default is never mutated, only replaced
)


@contextlib.contextmanager
def _naming(naming: _Naming) -> Iterator[None]:
    token = _NAMING.set(naming)
    try:
        yield
    finally:
        _NAMING.reset(token)


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
        naming = _NAMING.get()
        name, fix = naming.describe, naming.fix

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
            value = getattr(self, field)
            # NaN fails "> 0"; infinity would overflow the int byte levels and timed waits derived from it.
            if number(value) and not math.isfinite(value):
                raise bad(f"{name(field)} must be a finite number, got {value!r}")
            if not number(value) or not value > 0:
                raise bad(f"{name(field)} must be a positive number, got {value!r}")
            bounded(field, value)
        for field in ("batch_size_max", "batch_size_min", "history_size", "memory_error_retries"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(f"{name(field)} must be a whole number >= 1, got {value!r}")
            bounded(field, value)
        w, m = "warning_memory_gb", "max_memory_gb"
        if self.warning_memory_gb >= self.max_memory_gb:
            raise bad(
                f"warning memory {self.warning_memory_gb:.2f}GB must be below max memory "
                f"{self.max_memory_gb:.2f}GB; lower {fix(w)} or raise {fix(m)}"
            )
        lo, hi = "batch_size_min", "batch_size_max"
        if self.batch_size_min > self.batch_size_max:
            raise bad(
                f"batch size min {self.batch_size_min} is above max {self.batch_size_max}; make {fix(lo)} <= {fix(hi)}"
            )
        r = "reset_memory_gb"
        if self.reset_memory_gb is not None:
            if number(self.reset_memory_gb) and math.isfinite(self.reset_memory_gb):
                bounded(r, self.reset_memory_gb)
            if not (
                number(self.reset_memory_gb)
                and math.isfinite(self.reset_memory_gb)
                and 0 < self.reset_memory_gb < self.max_memory_gb
            ):
                shown = f"{self.reset_memory_gb:.2f}GB" if number(self.reset_memory_gb) else repr(self.reset_memory_gb)
                raise bad(
                    f"reset memory {shown} must be between 0 and max memory "
                    f"{self.max_memory_gb:.2f}GB; lower {fix(r)} or raise {fix(m)}"
                )
        h = "warning_hysteresis"
        if not (number(self.warning_hysteresis) and 0 <= self.warning_hysteresis < 1):
            raise bad(f"{name(h)} must be in [0, 1), got {self.warning_hysteresis!r}")
        lo, hi = "backoff_initial_s", "backoff_max_s"
        if self.backoff_max_s < self.backoff_initial_s:
            raise bad(
                f"backoff max {self.backoff_max_s}s must be >= backoff initial {self.backoff_initial_s}s; "
                f"raise {fix(hi)} or lower {fix(lo)}"
            )
        lo, hi = "reset_hold_s", "reset_hold_max_s"
        if self.reset_hold_max_s < self.reset_hold_s:
            # Otherwise the "growing" hold after repeated trips would be shorter than the first one.
            raise bad(
                f"reset hold max {self.reset_hold_max_s}s must be >= reset hold {self.reset_hold_s}s; "
                f"raise {fix(hi)} or lower {fix(lo)}"
            )


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


def threshold_changes(
    *,
    warning: str | float | None = None,
    max: str | float | None = None,
    reset: str | float | None = None,
    limit_bytes: int | None = None,
) -> dict[str, float]:
    """MemoryConfig changes for new warning/breaker/reset levels typed by an operator (GB, MB or a percent)."""
    changes: dict[str, float] = {}
    try:
        if warning is not None:
            changes["warning_memory_gb"] = parse_gb(warning, limit_bytes=limit_bytes, what="warning threshold")
        if max is not None:
            changes["max_memory_gb"] = parse_gb(max, limit_bytes=limit_bytes, what="breaker threshold")
        if reset is not None:
            changes["reset_memory_gb"] = parse_gb(reset, limit_bytes=limit_bytes, what="reset level")
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


_LEVELS = ("max_memory_gb", "warning_memory_gb", "reset_memory_gb")


@dataclass(frozen=True)
class ThresholdOrigin:
    """Which memory levels apply, where each came from, and what looked dangerous.

    ``report()`` is the run report's ``thresholds`` entry; ``warnings`` are also
    logged at start by ``log()``.
    """

    max_memory_gb: float
    warning_memory_gb: float
    reset_memory_gb: float
    #: field -> "--max-memory", "MEMTUI_WARNING_MEMORY", "cfg.toml: max-memory", "default",
    #: or "default 1.50GB lowered to 85% of the memory limit"
    sources: Mapping[str, str]
    limit_text: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def lowered(self) -> bool:
        return any("lowered" in text for text in self.sources.values())

    @property
    def breaker_lowered(self) -> bool:
        """The breaker is a default lowered to fit the memory limit (not a level the operator chose)."""
        return "lowered" in self.sources.get("max_memory_gb", "")

    @property
    def why(self) -> str:
        parts = [f"{_FIELD_TO_SETTING[f]} {getattr(self, f):.2f}GB from {self.sources[f]}" for f in _LEVELS]
        tail = f" (memory limit {self.limit_text})" if self.limit_text else " (no memory limit known)"
        return "; ".join(parts) + tail

    def report(self) -> dict[str, Any]:
        return {
            "max_memory_gb": round(self.max_memory_gb, 3),
            "warning_memory_gb": round(self.warning_memory_gb, 3),
            "reset_memory_gb": round(self.reset_memory_gb, 3),
            "why": self.why,
            "warnings": list(self.warnings),
        }

    def log(self, logger: logging.Logger | None = None) -> None:
        logger = logger or logging.getLogger("memtui")
        for line in self.warnings:
            logger.warning("⚠️ %s", line)
        (logger.warning if self.lowered else logger.info)("📏 Thresholds: %s", self.why)


def _limit_text(limit_bytes: int | None, limit_source: str | None) -> str | None:
    if not limit_bytes:
        return None
    return f"{limit_bytes / GB:.2f}GB ({limit_source})" if limit_source else f"{limit_bytes / GB:.2f}GB"


def _consequence(limit_source: str | None) -> str:
    source = (limit_source or "").lower()
    if source.startswith("rlimit"):
        return "allocations will fail before its breaker acts"
    if source.startswith("physical"):
        return "the machine will swap or kill memtui before its breaker acts"
    return "the kernel will kill memtui before its breaker acts"


def cap_defaults(
    values: dict[str, Any],
    given: Mapping[str, str],
    *,
    limit_bytes: int | None,
    limit_source: str | None = None,
    floor_bytes: int | None = None,
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Fit default levels under the memory limit; keep given ones, with a warning if above the limit.

    ``values`` holds field values (defaults for every field not in ``given``, which maps
    field -> how the operator wrote it). Returns (new values, field -> source text, warnings).
    Rules, for a known limit L:

    * a default breaker above ``BREAKER_FRACTION`` * L is lowered to it;
    * a default warning level never sits above ``WARNING_RATIO`` of the breaker (nor of the
      lowered default breaker, when an explicit breaker is above L) -- even without a limit,
      so ``--max-memory 0.8`` alone no longer collides with the 1.0 GB default warning;
    * but a lowered default warning level is not put below ``floor_bytes`` (what the job needs
      anyway, e.g. the model's estimated footprint) while it can stay under
      ``FLOOR_ROOM`` of the breaker: a reset level below memtui's own floor would keep
      an open breaker from ever closing;
    * a default reset level never sits above the warning level;
    * a given level at or above L is kept and earns a warning.
    """
    out = dict(values)
    sources = {f: given.get(f, "default") for f in _LEVELS}
    warnings: list[str] = []
    limit_text = _limit_text(limit_bytes, limit_source)
    cap = BREAKER_FRACTION * limit_bytes / GB if limit_bytes else None
    m, w, r = _LEVELS
    if m not in given and cap is not None and _num(out[m]) and out[m] > cap:
        sources[m] = f"default {out[m]:.2f}GB lowered to {BREAKER_FRACTION:.0%} of the memory limit"
        out[m] = cap
    if w not in given and _num(out[w]) and _num(out[m]):
        by_limit = cap is not None and cap < out[m]  # an explicit breaker above the limit
        breaker: float = cap if cap is not None and by_limit else out[m]
        ceiling = WARNING_RATIO * breaker
        if out[w] > ceiling:
            of = f"{BREAKER_FRACTION:.0%} of the memory limit" if by_limit else "the breaker"
            sources[w] = f"default {out[w]:.2f}GB lowered to 2/3 of {of}"
            floor = min(floor_bytes / GB, FLOOR_ROOM * breaker) if floor_bytes else 0.0
            if floor > ceiling:
                ceiling = min(out[w], floor)
                sources[w] = f"default {out[w]:.2f}GB lowered to the job's estimated need"
            out[w] = ceiling
    if out[r] is None:
        sources[r] = "the warning level"
    elif r not in given and _num(out[r]) and _num(out[w]) and out[r] > out[w]:
        sources[r] = f"default {out[r]:.2f}GB lowered to the warning level"
        out[r] = out[w]
    if limit_bytes:
        for f in _LEVELS:
            if f in given and _num(out[f]) and out[f] * GB >= limit_bytes:
                tail = _consequence(limit_source) if f == m else "memtui will be killed before it gets there"
                warnings.append(f"{given[f]} {out[f]:.2f}GB is above the memory limit {limit_text}: {tail}; lower it")
    return out, sources, warnings


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resolve_config(
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    limit_bytes: int | None = None,
    limit_source: str | None = None,
    floor_bytes: int | None = None,
    base: MemoryConfig | None = None,
) -> tuple[MemoryConfig, ThresholdOrigin]:
    """Layer defaults < TOML file < environment < flags into a validated MemoryConfig, and say why.

    ``flags`` maps setting names ("max-memory") to raw values; None means "not given".
    Defaults (``base`` or MemoryConfig()) are fitted under ``limit_bytes`` (see
    ``cap_defaults``); any validation error names each setting as the operator wrote it.
    """
    values: dict[str, Any] = dataclasses.asdict(base or MemoryConfig())
    given: dict[str, str] = {}  # field -> the last source that set it, as the operator would write it
    if file is not None:
        for setting, (key, raw) in _read_toml_keys(Path(file)).items():
            _apply(values, setting, raw, where=f"{file}: {key}", limit_bytes=limit_bytes)
            given[SETTINGS[setting][0]] = f"{file}: {key}"
    environ = os.environ if env is None else env
    for setting in SETTINGS:
        name = env_name(setting)
        if environ.get(name, "").strip():
            _apply(values, setting, environ[name], where=f"environment variable {name}", limit_bytes=limit_bytes)
            given[SETTINGS[setting][0]] = name
    for setting, raw in (flags or {}).items():
        if raw is not None:
            _apply(values, setting, raw, where=f"--{setting}", limit_bytes=limit_bytes)
            given[SETTINGS[setting][0]] = f"--{setting}"
    values, sources, warnings = cap_defaults(
        values, given, limit_bytes=limit_bytes, limit_source=limit_source, floor_bytes=floor_bytes
    )
    labels, fixes = dict(given), dict(given)
    for field, setting in _FIELD_TO_SETTING.items():
        if field not in given:
            labels[field] = "default"
            lowered = sources.get(field, "")
            fixes[field] = f"--{setting}" + (f" (its {lowered})" if "lowered" in lowered else "")
    try:
        with _naming(_Naming(labels, fixes)):
            config = MemoryConfig(**values)
    except TypeError as exc:  # pragma: no cover - a programming error, not user input
        raise ConfigError(str(exc)) from None
    origin = ThresholdOrigin(
        max_memory_gb=config.max_memory_gb,
        warning_memory_gb=config.warning_memory_gb,
        reset_memory_gb=config.reset_bytes / GB,
        sources=sources,
        limit_text=_limit_text(limit_bytes, limit_source),
        warnings=tuple(warnings),
    )
    return config, origin


def load_config(
    *,
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    limit_bytes: int | None = None,
    base: MemoryConfig | None = None,
) -> MemoryConfig:
    """``resolve_config`` without the explanation: the validated MemoryConfig only."""
    return resolve_config(file=file, env=env, flags=flags, limit_bytes=limit_bytes, base=base)[0]


def _read_toml(path: Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys or a [memory] table, flag or field names."""
    return {setting: raw for setting, (_key, raw) in _read_toml_keys(path).items()}


def _read_toml_keys(path: Path) -> dict[str, tuple[str, Any]]:
    """setting -> (the key as written in the file, raw value)."""
    data = read_toml_file(path, "config file", missing_fix="check --config or MEMTUI_CONFIG")
    if "memory" in data:
        table = data["memory"]  # a shared file: only [memory] is ours, other tables belong to other tools
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: 'memory' must be a table ([memory])")
    else:
        table = {k: v for k, v in data.items() if not isinstance(v, dict)}
    out: dict[str, tuple[str, Any]] = {}
    for key, raw in table.items():
        setting = key.replace("_", "-")
        setting = _FIELD_TO_SETTING.get(key, setting)
        if setting not in SETTINGS:
            known = ", ".join(sorted(SETTINGS))
            raise ConfigError(f"config file {path}: unknown setting {key!r}; known settings: {known}")
        out[setting] = (key, raw)
    return out
