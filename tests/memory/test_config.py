import dataclasses
import math

import pytest

from memtui.errors import ConfigError, UsageError
from memtui.memory.config import SETTINGS, MemoryConfig, env_name, load_config
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


@pytest.mark.parametrize("changes, needle", [
    ({"warning_memory_gb": 1.5}, "must be below max memory"),
    ({"warning_memory_gb": 2.0}, "must be below max memory"),
    ({"max_memory_gb": 0}, "max_memory_gb must be a positive number"),
    ({"max_memory_gb": -1.0}, "max_memory_gb must be a positive number"),
    ({"warning_memory_gb": math.nan}, "warning_memory_gb must be a positive number"),
    ({"max_memory_gb": math.inf}, "max_memory_gb"),
    ({"sample_interval_s": 0}, "sample_interval_s must be a positive number"),
    ({"breaker_timeout_s": -1}, "breaker_timeout_s must be a positive number"),
    ({"max_memory_gb": True}, "max_memory_gb must be a positive number"),
    ({"max_memory_gb": "1.5"}, "max_memory_gb must be a positive number"),
    ({"batch_size_min": 0}, "batch_size_min must be a whole number >= 1"),
    ({"batch_size_max": 2.5}, "batch_size_max must be a whole number >= 1"),
    ({"batch_size_min": 6}, "batch size min 6 is above max 5"),
    ({"history_size": 0}, "history_size"),
    ({"reset_memory_gb": 1.5}, "reset memory"),
    ({"reset_memory_gb": 0.0}, "reset memory"),
    ({"warning_hysteresis": 1.0}, "warning_hysteresis"),
    ({"warning_hysteresis": -0.1}, "warning_hysteresis"),
    ({"backoff_initial_s": 4.0, "backoff_max_s": 2.0}, "backoff_max_s"),
    ({"reset_hold_s": 10.0, "reset_hold_max_s": 5.0}, "reset_hold_max_s"),
])
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
    top = write(tmp_path, 'max_memory = 3\nsample-interval = 0.5\nbreaker_timeout_s = 12\n')
    cfg = load_config(file=top, env={})
    assert (cfg.max_memory_gb, cfg.sample_interval_s, cfg.breaker_timeout_s) == (3.0, 0.5, 12.0)


@pytest.mark.parametrize("layers, expected", [
    ({"file"}, 1.1),
    ({"env"}, 1.2),
    ({"flags"}, 1.3),
    ({"file", "env"}, 1.2),
    ({"file", "flags"}, 1.3),
    ({"env", "flags"}, 1.3),
    ({"file", "env", "flags"}, 1.3),
])
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
    cfg = load_config(file=file, env={"MEMTUI_WARNING_MEMORY": "50%"}, flags={"reset-memory": "40%"},
                      limit_bytes=limit)
    assert cfg.max_memory_gb == pytest.approx(1.5)
    assert cfg.warning_memory_gb == pytest.approx(1.0)
    assert cfg.reset_memory_gb == pytest.approx(0.8)


def test_percent_without_limit_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_config(env={"MEMTUI_MAX_MEMORY": "75%"})
    text = one_line(info.value)
    assert "MEMTUI_MAX_MEMORY" in text and "no memory limit is known" in text


@pytest.mark.parametrize("where, kwargs, needle", [
    ("env", {"env": {"MEMTUI_BATCH_MAX": "lots"}}, "environment variable MEMTUI_BATCH_MAX: 'lots' is not a whole number"),
    ("env", {"env": {"MEMTUI_SAMPLE_INTERVAL": "fast"}}, "MEMTUI_SAMPLE_INTERVAL: 'fast' is not a number"),
    ("flag", {"env": {}, "flags": {"max-memory": "huge"}}, "--max-memory: 'huge' is not a memory size"),
    ("flag", {"env": {}, "flags": {"batch-min": "2.5"}}, "--batch-min: '2.5' is not a whole number"),
])
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
    samples = {"max-memory": "3", "warning-memory": "0.5", "reset-memory": "0.4", "batch-max": "7",
               "batch-min": "2", "sample-interval": "0.3", "breaker-timeout": "9", "reset-hold": "2",
               "reset-hold-max": "40", "backoff-initial": "0.5", "backoff-max": "9",
               "warning-hysteresis": "0.1"}
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
    path.write_text('max-memory = 2.0\n\n[tool.other]\nanything = true\n')
    assert load_config(file=path, env={}).max_memory_gb == 2.0
    path.write_text('memory = 3\n')
    with pytest.raises(ConfigError, match="must be a table"):
        load_config(file=path, env={})
