import dataclasses
import logging
import math

import pytest

from memtui.errors import ConfigError, UsageError
from memtui.memory.config import BOUNDS, MemoryConfig
from memtui.memory.config_layers import (
    BREAKER_FRACTION,
    SETTINGS,
    WARNING_RATIO,
    cap_defaults,
    env_name,
    load_config,
    resolve_config,
)
from memtui.memory.units import GB


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, f"not a one-line message: {text!r}"
    return text


# -- the dataclass ------------------------------------------------------------------


def test_defaults_are_the_guides():
    cfg = MemoryConfig()
    assert (cfg.max_memory_gb, cfg.warning_memory_gb) == (1.5, 1.0)
    assert (cfg.batch_size_max, cfg.batch_size_min) == (5, 1)
    assert cfg.sample_interval_s == 0.1
    assert cfg.breaker_timeout_s > 0


def test_derived_levels_in_bytes():
    cfg = MemoryConfig(max_memory_gb=2.0, warning_memory_gb=1.0, warning_hysteresis=0.1)
    assert cfg.max_bytes == 2 * GB
    assert cfg.warning_bytes == GB
    assert cfg.warning_clear_bytes == int(0.9 * GB)
    assert cfg.reset_bytes == cfg.warning_bytes  # default reset level is the warning level
    assert MemoryConfig(reset_memory_gb=0.8).reset_bytes == int(0.8 * GB)


def test_frozen_and_replace_validates():
    cfg = MemoryConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_memory_gb = 3.0  # type: ignore[misc]
    bigger = cfg.replace(max_memory_gb=3.0)
    assert bigger.max_memory_gb == 3.0 and cfg.max_memory_gb == 1.5
    with pytest.raises(ConfigError):
        cfg.replace(warning_memory_gb=2.0)


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"warning_memory_gb": 1.5}, "must be below max memory"),
        ({"warning_memory_gb": 2.0}, "must be below max memory"),
        ({"max_memory_gb": 0}, "max memory (max_memory_gb) must be a positive number"),
        ({"max_memory_gb": -1.0}, "max memory (max_memory_gb) must be a positive number"),
        ({"warning_memory_gb": math.nan}, "warning memory (warning_memory_gb) must be a finite number"),
        ({"max_memory_gb": math.inf}, "max memory (max_memory_gb) must be a finite number"),
        ({"sample_interval_s": 0}, "sample interval (sample_interval_s) must be a positive number"),
        ({"breaker_timeout_s": -1}, "breaker timeout (breaker_timeout_s) must be a positive number"),
        ({"max_memory_gb": True}, "max memory (max_memory_gb) must be a positive number"),
        ({"max_memory_gb": "1.5"}, "max memory (max_memory_gb) must be a positive number"),
        ({"batch_size_min": 0}, "(batch_size_min) must be a whole number >= 1"),
        ({"batch_size_max": 2.5}, "(batch_size_max) must be a whole number >= 1"),
        ({"batch_size_min": 6}, "batch size min 6 is above max 5"),
        ({"history_size": 0}, "history_size"),
        ({"reset_memory_gb": 1.5}, "reset memory"),
        ({"reset_memory_gb": 0.0}, "reset memory"),
        ({"warning_hysteresis": 1.0}, "warning_hysteresis"),
        ({"warning_hysteresis": -0.1}, "warning_hysteresis"),
        ({"backoff_initial_s": 4.0, "backoff_max_s": 2.0}, "backoff_max_s"),
        ({"reset_hold_s": 10.0, "reset_hold_max_s": 5.0}, "reset_hold_max_s"),
    ],
)
def test_validation_errors_are_clear(changes, needle):
    with pytest.raises(ConfigError) as info:
        MemoryConfig(**changes)
    assert needle in one_line(info.value)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_warning_error_names_both_values():
    with pytest.raises(ConfigError) as info:
        MemoryConfig(max_memory_gb=1.2, warning_memory_gb=1.3)
    assert "1.30GB" in str(info.value) and "1.20GB" in str(info.value)


def test_min_equal_max_is_fine():
    assert MemoryConfig(batch_size_min=3, batch_size_max=3).batch_size_min == 3


# -- layering -------------------------------------------------------------------------


def write(tmp_path, text: str):
    path = tmp_path / "memtui.toml"
    path.write_text(text)
    return path


def test_env_names():
    assert env_name("max-memory") == "MEMTUI_MAX_MEMORY"
    assert env_name("warning-memory") == "MEMTUI_WARNING_MEMORY"
    assert env_name("batch-max") == "MEMTUI_BATCH_MAX"
    assert env_name("breaker-timeout") == "MEMTUI_BREAKER_TIMEOUT"


def test_no_layers_gives_defaults():
    assert load_config(env={}) == MemoryConfig()


def test_base_is_the_bottom_layer():
    base = MemoryConfig(batch_size_max=9)
    assert load_config(env={}, base=base).batch_size_max == 9
    assert load_config(env={"MEMTUI_BATCH_MAX": "7"}, base=base).batch_size_max == 7


def test_file_table_and_top_level_keys(tmp_path):
    table = write(tmp_path, '[memory]\nmax-memory = "2GB"\nwarning_memory_gb = 1.25\nbatch_max = 8\n')
    cfg = load_config(file=table, env={})
    assert (cfg.max_memory_gb, cfg.warning_memory_gb, cfg.batch_size_max) == (2.0, 1.25, 8)
    top = write(tmp_path, "max_memory = 3\nsample-interval = 0.5\nbreaker_timeout_s = 12\n")
    cfg = load_config(file=top, env={})
    assert (cfg.max_memory_gb, cfg.sample_interval_s, cfg.breaker_timeout_s) == (3.0, 0.5, 12.0)


@pytest.mark.parametrize(
    "layers, expected",
    [
        ({"file"}, 1.1),
        ({"env"}, 1.2),
        ({"flags"}, 1.3),
        ({"file", "env"}, 1.2),
        ({"file", "flags"}, 1.3),
        ({"env", "flags"}, 1.3),
        ({"file", "env", "flags"}, 1.3),
    ],
)
def test_precedence_file_env_flags(tmp_path, layers, expected):
    file = write(tmp_path, "[memory]\nwarning-memory = 1.1\n") if "file" in layers else None
    env = {"MEMTUI_WARNING_MEMORY": "1.2"} if "env" in layers else {}
    flags = {"warning-memory": "1.3"} if "flags" in layers else None
    assert load_config(file=file, env=env, flags=flags).warning_memory_gb == pytest.approx(expected)


def test_layers_combine_per_setting(tmp_path):
    file = write(tmp_path, "[memory]\nmax-memory = 4\nwarning-memory = 2\nbatch-max = 10\n")
    cfg = load_config(file=file, env={"MEMTUI_WARNING_MEMORY": "3"}, flags={"batch-max": 6, "max-memory": None})
    assert (cfg.max_memory_gb, cfg.warning_memory_gb, cfg.batch_size_max) == (4.0, 3.0, 6)


def test_blank_env_and_none_flags_are_not_given():
    cfg = load_config(env={"MEMTUI_MAX_MEMORY": "  "}, flags={"max-memory": None})
    assert cfg.max_memory_gb == 1.5


def test_env_defaults_to_process_environment(monkeypatch):
    monkeypatch.setenv("MEMTUI_BATCH_MIN", "2")
    assert load_config().batch_size_min == 2


def test_percent_of_limit_in_every_layer(tmp_path):
    limit = 2 * GB
    file = write(tmp_path, '[memory]\nmax-memory = "75%"\n')
    cfg = load_config(file=file, env={"MEMTUI_WARNING_MEMORY": "50%"}, flags={"reset-memory": "40%"}, limit_bytes=limit)
    assert cfg.max_memory_gb == pytest.approx(1.5)
    assert cfg.warning_memory_gb == pytest.approx(1.0)
    assert cfg.reset_memory_gb == pytest.approx(0.8)


def test_percent_without_limit_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_config(env={"MEMTUI_MAX_MEMORY": "75%"})
    text = one_line(info.value)
    assert "MEMTUI_MAX_MEMORY" in text and "no memory limit is known" in text


@pytest.mark.parametrize(
    "where, kwargs, needle",
    [
        (
            "env",
            {"env": {"MEMTUI_BATCH_MAX": "lots"}},
            "environment variable MEMTUI_BATCH_MAX: 'lots' is not a whole number",
        ),
        ("env", {"env": {"MEMTUI_SAMPLE_INTERVAL": "fast"}}, "MEMTUI_SAMPLE_INTERVAL: 'fast' is not a number"),
        ("flag", {"env": {}, "flags": {"max-memory": "huge"}}, "--max-memory: 'huge' is not a memory size"),
        ("flag", {"env": {}, "flags": {"batch-min": "2.5"}}, "--batch-min: '2.5' is not a whole number"),
    ],
)
def test_parse_errors_say_where(where, kwargs, needle):
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)
    assert needle in one_line(info.value)


def test_cross_layer_conflict(tmp_path):
    file = write(tmp_path, "[memory]\nmax-memory = 1.2\n")
    assert load_config(file=file, env={}).max_memory_gb == 1.2
    with pytest.raises(ConfigError) as info:
        load_config(file=file, env={"MEMTUI_WARNING_MEMORY": "1.4"})
    assert "must be below max memory" in one_line(info.value)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(file=tmp_path / "missing.toml", env={})
    bad = write(tmp_path, "[memory\nmax = 1")
    with pytest.raises(ConfigError) as info:
        load_config(file=bad, env={})
    assert "not valid TOML" in one_line(info.value)
    unknown = write(tmp_path, "[memory]\nmax-memroy = 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(file=unknown, env={})
    text = one_line(info.value)
    assert "'max-memroy'" in text and "max-memory" in text
    wrong_type = write(tmp_path, "memory = 3\n")
    with pytest.raises(ConfigError, match="must be a table"):
        load_config(file=wrong_type, env={})
    bad_value = write(tmp_path, '[memory]\nbatch-max = "many"\n')
    with pytest.raises(ConfigError) as info:
        load_config(file=bad_value, env={})
    assert str(bad_value) in one_line(info.value) and "batch-max" in str(info.value)


def test_every_setting_has_an_env_var_that_works():
    samples = {
        "max-memory": "3",
        "warning-memory": "0.5",
        "reset-memory": "0.4",
        "batch-max": "7",
        "batch-min": "2",
        "sample-interval": "0.3",
        "breaker-timeout": "9",
        "reset-hold": "2",
        "reset-hold-max": "40",
        "backoff-initial": "0.5",
        "backoff-max": "9",
        "warning-hysteresis": "0.1",
    }
    for setting, (field, _parse) in SETTINGS.items():
        assert setting in samples, f"no sample value for {setting}"
        cfg = load_config(env={env_name(setting): samples[setting]})
        assert getattr(cfg, field) != getattr(MemoryConfig(), field), setting


@pytest.mark.parametrize("changes", [{"reset_memory_gb": "1"}, {"warning_hysteresis": "0.1"}])
def test_wrongly_typed_optional_fields_are_config_errors(changes):
    with pytest.raises(ConfigError):
        MemoryConfig(**changes)


def test_infinite_env_value_is_rejected():
    with pytest.raises(ConfigError, match="MEMTUI_MAX_MEMORY|max_memory_gb"):
        load_config(env={"MEMTUI_MAX_MEMORY": "inf"})


def test_hysteresis_accepts_percent():
    assert load_config(env={"MEMTUI_WARNING_HYSTERESIS": "10%"}).warning_hysteresis == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="not a fraction"):
        load_config(env={"MEMTUI_WARNING_HYSTERESIS": "some"})


def test_a_shared_config_file_keeps_other_tools_tables(tmp_path):
    path = tmp_path / "shared.toml"
    path.write_text('[memory]\nmax-memory = "2.0"\n\n[tool.other]\nanything = true\n')
    assert load_config(file=path, env={}).max_memory_gb == 2.0
    path.write_text("max-memory = 2.0\n\n[tool.other]\nanything = true\n")
    assert load_config(file=path, env={}).max_memory_gb == 2.0
    path.write_text("memory = 3\n")
    with pytest.raises(ConfigError, match="must be a table"):
        load_config(file=path, env={})


# -- defaults fit under the discovered memory limit (A) ------------------------------------

CGROUP = "cgroup v1 memory.limit_in_bytes (/small)"


def resolve(limit_gb: float | None, **kwargs):
    kwargs.setdefault("env", {})
    limit = int(limit_gb * GB) if limit_gb else None
    return resolve_config(limit_bytes=limit, limit_source=CGROUP if limit else None, **kwargs)


def test_defaults_are_lowered_under_a_small_limit():
    cfg, origin = resolve(0.34)
    assert cfg.max_memory_gb == pytest.approx(BREAKER_FRACTION * 0.34)
    assert cfg.warning_memory_gb == pytest.approx(WARNING_RATIO * BREAKER_FRACTION * 0.34)
    assert cfg.reset_memory_gb is None and cfg.reset_bytes == cfg.warning_bytes
    assert cfg.max_bytes < 0.34 * GB
    report = origin.report()
    assert set(report) == {"max_memory_gb", "warning_memory_gb", "reset_memory_gb", "why", "warnings"}
    assert report["max_memory_gb"] == round(cfg.max_memory_gb, 3)
    assert report["reset_memory_gb"] == round(cfg.warning_memory_gb, 3)
    assert "max-memory 0.29GB from default 1.50GB lowered to 85% of the memory limit" in report["why"]
    assert "warning-memory 0.19GB from default 1.00GB lowered to 2/3 of the breaker" in report["why"]
    assert "reset-memory 0.19GB from the warning level" in report["why"]
    assert CGROUP in report["why"] and report["warnings"] == []
    assert origin.lowered and origin.breaker_lowered


@pytest.mark.parametrize("limit_gb", [None, 1.5 / BREAKER_FRACTION + 0.01, 24.0])
def test_defaults_stay_where_the_limit_allows_them(limit_gb):
    cfg, origin = resolve(limit_gb)
    assert cfg == MemoryConfig()
    assert not origin.lowered and origin.warnings == ()
    assert origin.why.startswith("max-memory 1.50GB from default; warning-memory 1.00GB from default")


def test_a_limit_between_the_levels_lowers_only_what_does_not_fit():
    cfg, _origin = resolve(1.5)  # 85%: 1.275 GB breaker; 2/3 of it is 0.85, below the 1.0 default warning
    assert cfg.max_memory_gb == pytest.approx(1.275)
    assert cfg.warning_memory_gb == pytest.approx(0.85)
    cfg, _origin = resolve(1.7)  # 1.445 GB breaker; 2/3 is 0.963
    assert cfg.warning_memory_gb == pytest.approx(WARNING_RATIO * 1.7 * BREAKER_FRACTION)


@pytest.mark.parametrize(
    "source, kwargs, label",
    [
        ("flag", {"flags": {"max-memory": "1.5"}}, "--max-memory"),
        ("env", {"env": {"MEMTUI_MAX_MEMORY": "1.5GB"}}, "MEMTUI_MAX_MEMORY"),
    ],
)
def test_an_explicit_breaker_above_the_limit_is_kept_with_a_warning(source, kwargs, label):
    cfg, origin = resolve(0.34, **kwargs)
    assert cfg.max_memory_gb == 1.5
    assert origin.warnings == (
        f"{label} 1.50GB is above the memory limit 0.34GB ({CGROUP}): the kernel will kill memtui before its "
        "breaker acts; lower it",
    )
    assert origin.report()["warnings"] == list(origin.warnings)
    assert f"max-memory 1.50GB from {label}" in origin.why
    # the default warning level still fits the limit, not 2/3 of the too-high breaker
    assert cfg.warning_memory_gb == pytest.approx(WARNING_RATIO * BREAKER_FRACTION * 0.34)
    assert "lowered to 2/3 of 85% of the memory limit" in origin.why
    assert not origin.breaker_lowered


def test_an_explicit_level_from_the_file_above_the_limit_is_named_as_written(tmp_path):
    file = write(tmp_path, "[memory]\nwarning_memory = 0.5\nmax-memory = 0.6\n")
    cfg, origin = resolve(0.34, file=file)
    assert (cfg.max_memory_gb, cfg.warning_memory_gb) == (0.6, 0.5)
    assert [w.split(" is above")[0] for w in origin.warnings] == [
        f"{file}: max-memory 0.60GB",
        f"{file}: warning_memory 0.50GB",
    ]
    assert "memtui will be killed before it gets there" in origin.warnings[1]


@pytest.mark.parametrize(
    "source, consequence",
    [
        ("RLIMIT_AS", "allocations will fail before its breaker acts"),
        ("physical RAM", "the machine will swap or kill memtui before its breaker acts"),
        ("cgroup memory.max (/a)", "the kernel will kill memtui before its breaker acts"),
    ],
)
def test_the_warning_says_what_happens_at_that_kind_of_limit(source, consequence):
    _cfg, origin = resolve_config(env={}, flags={"max-memory": "2"}, limit_bytes=GB, limit_source=source)
    assert origin.warnings[0].endswith(f"({source}): {consequence}; lower it")


def test_explicit_levels_below_the_limit_earn_no_warning():
    cfg, origin = resolve(2.0, flags={"max-memory": "1.9", "warning-memory": "75%"})
    assert (cfg.max_memory_gb, cfg.warning_memory_gb) == (1.9, 1.5)
    assert origin.warnings == () and not origin.lowered


def test_an_explicit_low_breaker_pulls_the_default_warning_down_even_without_a_limit():
    cfg, origin = resolve(None, flags={"max-memory": "0.6"})  # used to fail: default warning 1.0 >= 0.6
    assert cfg.warning_memory_gb == pytest.approx(0.4)
    assert "lowered to 2/3 of the breaker" in origin.why


def test_an_explicit_warning_above_the_lowered_breaker_is_an_error_naming_both():
    with pytest.raises(ConfigError) as info:
        resolve(1.0, env={"MEMTUI_WARNING_MEMORY": "0.95"})
    text = one_line(info.value)
    assert "warning memory 0.95GB must be below max memory 0.85GB" in text
    assert (
        "lower MEMTUI_WARNING_MEMORY or raise --max-memory (its default 1.50GB lowered to 85% of the memory "
        "limit)" in text
    )


def test_a_default_reset_level_from_the_base_is_kept_under_the_warning_level():
    base = MemoryConfig(reset_memory_gb=0.9)
    cfg, origin = resolve(0.5, base=base)
    assert cfg.reset_memory_gb == cfg.warning_memory_gb
    assert "reset-memory" in origin.why and "lowered to the warning level" in origin.why


def test_the_floor_keeps_a_lowered_warning_level_above_the_jobs_own_need():
    # 0.68 GB limit: breaker 0.578; 2/3 of it (0.385) is below the model's ~0.56 GB, so an open breaker
    # could never reset. The floor lifts the warning/reset level to 90% of the breaker at most.
    cfg, origin = resolve(0.68, floor_bytes=int(0.56 * GB))
    assert cfg.max_memory_gb == pytest.approx(0.578)
    assert cfg.warning_memory_gb == pytest.approx(0.9 * 0.578)
    assert "lowered to the job's estimated need" in origin.why
    cfg, _ = resolve(0.8, floor_bytes=int(0.56 * GB))
    assert cfg.warning_memory_gb == pytest.approx(0.56)
    cfg, _ = resolve(2.0, floor_bytes=int(0.56 * GB))  # a floor never raises a level that fits
    assert cfg.warning_memory_gb == 1.0
    cfg, _ = resolve(1.0, floor_bytes=int(0.3 * GB))  # nor lifts one already above it
    assert cfg.warning_memory_gb == pytest.approx(WARNING_RATIO * 0.85)


def test_cap_defaults_is_pure():
    values = {"max_memory_gb": 1.5, "warning_memory_gb": 1.0, "reset_memory_gb": None}
    out, sources, warnings = cap_defaults(values, {}, limit_bytes=GB)
    assert values["max_memory_gb"] == 1.5 and out["max_memory_gb"] == pytest.approx(0.85)
    assert sources["reset_memory_gb"] == "the warning level" and warnings == []


def test_log_writes_warnings_and_the_reason(caplog):
    caplog.set_level(logging.INFO, logger="memtui")
    _cfg, origin = resolve(0.34, flags={"max-memory": "1.5"})
    origin.log()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "memtui"]
    assert messages[0] == ("WARNING", "⚠️ " + origin.warnings[0])
    assert messages[1] == ("WARNING", "📏 Thresholds: " + origin.why)  # a lowered default is worth a warning
    caplog.clear()
    resolve(None)[1].log()
    assert [r.levelname for r in caplog.records] == ["INFO"]


def test_load_config_is_resolve_config_without_the_reason():
    assert load_config(env={}, limit_bytes=int(0.34 * GB)) == resolve(0.34)[0]


# -- validation errors name the setting as the operator wrote it (B) ---------------------------


@pytest.mark.parametrize(
    "setting, bad",
    [
        ("max-memory", "-1"),
        ("warning-memory", "0"),
        ("sample-interval", "-2"),
        ("breaker-timeout", "0"),
        ("reset-hold", "-1"),
        ("reset-hold-max", "0"),
        ("backoff-initial", "-1"),
        ("backoff-max", "0"),
        ("batch-max", "0"),
        ("batch-min", "0"),
        ("warning-hysteresis", "1.5"),
        ("reset-memory", "-1"),
    ],
)
def test_every_single_setting_error_names_its_source(tmp_path, setting, bad):
    field = SETTINGS[setting][0]
    file = write(tmp_path, f'[memory]\n{field} = "{bad}"\n')
    for kwargs, label in [
        ({"flags": {setting: bad}}, f"--{setting}"),
        ({"env": {env_name(setting): bad}}, env_name(setting)),
        ({"file": file}, f"{file}: {field}"),
    ]:
        kwargs.setdefault("env", {})
        with pytest.raises(ConfigError) as info:
            load_config(**kwargs)
        text = one_line(info.value)
        assert label in text, (label, text)
        assert field not in text.replace(f"{file}: {field}", ""), text  # no internal field name
    with pytest.raises(ConfigError) as info:  # the API names the field
        MemoryConfig(**{field: float(bad) if field.endswith(("_gb", "_s", "hysteresis")) else int(bad)})
    assert field in one_line(info.value)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (
            {"flags": {"warning-memory": "2", "max-memory": "1.5"}},
            "warning memory 2.00GB must be below max memory 1.50GB; lower --warning-memory or raise --max-memory",
        ),
        (
            {"env": {"MEMTUI_WARNING_MEMORY": "2"}},
            "warning memory 2.00GB must be below max memory 1.50GB; lower MEMTUI_WARNING_MEMORY or raise --max-memory",
        ),
        (
            {"env": {"MEMTUI_RESET_MEMORY": "1.6"}, "flags": {"max-memory": "1.5"}},
            "lower MEMTUI_RESET_MEMORY or raise --max-memory",
        ),
        ({"env": {"MEMTUI_BACKOFF_INITIAL": "9"}}, "raise --backoff-max or lower MEMTUI_BACKOFF_INITIAL"),
        ({"flags": {"reset-hold": "40"}}, "raise --reset-hold-max or lower --reset-hold"),
        ({"env": {"MEMTUI_BATCH_MIN": "9"}, "flags": {"batch-max": "3"}}, "make MEMTUI_BATCH_MIN <= --batch-max"),
    ],
)
def test_cross_field_errors_name_every_source(kwargs, needle):
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)
    assert needle in one_line(info.value)


def test_cross_field_errors_from_the_file_use_its_keys(tmp_path):
    file = write(tmp_path, "[memory]\nwarning_memory_gb = 2.0\nmax-memory = 1.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(file=file, env={})
    assert f"lower {file}: warning_memory_gb or raise {file}: max-memory" in one_line(info.value)


def test_api_cross_field_errors_name_fields():
    with pytest.raises(ConfigError, match="lower warning_memory_gb or raise max_memory_gb"):
        MemoryConfig(warning_memory_gb=2.0)
    with pytest.raises(ConfigError, match="raise backoff_max_s or lower backoff_initial_s"):
        MemoryConfig(backoff_initial_s=9.0)


def test_naming_does_not_leak_out_of_load_config():
    with pytest.raises(ConfigError):
        load_config(flags={"max-memory": "-1"}, env={})
    with pytest.raises(ConfigError, match=r"max memory \(max_memory_gb\)"):
        MemoryConfig(max_memory_gb=-1.0)


# -- huge numbers: every size and seconds setting is bounded (C) --------------------------------

SECONDS = ["sample-interval", "breaker-timeout", "reset-hold", "reset-hold-max", "backoff-initial", "backoff-max"]
SIZES = ["max-memory", "warning-memory", "reset-memory"]


@pytest.mark.parametrize("setting", SECONDS + SIZES + ["batch-max", "batch-min"])
@pytest.mark.parametrize("value", ["1e300", "inf", "nan", "-inf", "1e400"])
def test_huge_and_non_finite_values_are_one_line_errors(setting, value):
    if setting.startswith("batch"):
        value = "1" + "0" * 30 if value == "1e300" else value
    with pytest.raises(ConfigError) as info:
        load_config(env={}, flags={setting: value})
    assert f"--{setting}" in one_line(info.value)


@pytest.mark.parametrize("setting", SECONDS + SIZES + ["batch-max", "batch-min"])
def test_each_bound_is_inclusive_and_named(setting):
    field = SETTINGS[setting][0]
    most, text = BOUNDS[field]
    if setting.startswith("batch"):
        most = int(most)
    big = {"max-memory": most, "warning-memory": 1.0, "reset-memory": 1.0}.get(setting, most)
    flags = {setting: str(big)}
    if setting in ("warning-memory", "reset-memory"):
        flags = {"max-memory": str(most), setting: str(most / 2)}
    if setting in ("reset-hold", "backoff-initial"):
        flags[setting.replace("initial", "max") if "backoff" in setting else "reset-hold-max"] = str(most)
    if setting == "batch-min":
        flags["batch-max"] = str(most)
    load_config(env={}, flags=flags)  # at the bound: fine
    over = {setting: str(most * 2)}
    with pytest.raises(ConfigError) as info:
        load_config(env={}, flags={**flags, **over})
    assert f"must be at most {text}" in one_line(info.value) and f"--{setting}" in str(info.value)


def test_bounds_cover_every_number_setting():
    numbers = {f.name for f in dataclasses.fields(MemoryConfig)} - {"warning_hysteresis"}
    assert numbers == set(BOUNDS)
