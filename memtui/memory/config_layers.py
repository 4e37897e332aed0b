"""How a MemoryConfig is layered: defaults < a TOML file < environment variables < flags.

Sizes are GB or a percent of the discovered memory limit ("75%"). Defaults never
exceed the discovered memory limit (``resolve_config``): a default breaker is
lowered to ``BREAKER_FRACTION`` of the limit, a default warning level to
``WARNING_RATIO`` of the breaker. Values the operator typed are kept, with a
warning when they are above the limit. Validation errors name each setting as
the operator wrote it (a ``Naming`` passed to ``memtui.memory.config.check``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtui.errors import ConfigError
from memtui.memory.config import SETTING_NAMES, MemoryConfig, Naming, check
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


#: config field -> how its raw value is parsed
_PARSERS: dict[str, Callable[..., Any]] = {
    "max_memory_gb": _gb,
    "warning_memory_gb": _gb,
    "reset_memory_gb": _gb,
    "batch_size_max": _int,
    "batch_size_min": _int,
    "sample_interval_s": _float,
    "breaker_timeout_s": _float,
    "reset_hold_s": _float,
    "reset_hold_max_s": _float,
    "warning_hysteresis": _fraction,
    "backoff_initial_s": _float,
    "backoff_max_s": _float,
}
#: setting name (as in flags, env vars and TOML keys) -> (config field, parser); the names are the record's
SETTINGS: dict[str, tuple[str, Callable[..., Any]]] = {
    setting: (field, _PARSERS[field]) for field, setting in SETTING_NAMES.items()
}
_FIELD_TO_SETTING = SETTING_NAMES


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
    check(values, Naming(labels, fixes))  # errors worded as the operator wrote each setting
    try:
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
