"""The floor abort's advice is valid when followed: every command line it offers is run through the CLI's
own config layering (resolve_config, as ``memtui run`` does) and must pass, and must put the reset level,
where the breaker closes, above the floor it measured."""

from __future__ import annotations

import re
import shlex

import pytest

from memtui.memory.admission import floor_reason
from memtui.memory.config_layers import resolve_config
from memtui.memory.units import GB


def offered(reason: str) -> list[dict[str, str]]:
    """Each set of flags the advice offers: the main one, and the alternative in parentheses if any."""
    flag_runs = re.findall(r"((?:--[a-z-]+ [0-9.]+ ?)+)", reason)
    out = []
    for run in flag_runs:
        words = shlex.split(run)
        out.append({words[i].removeprefix("--"): words[i + 1] for i in range(0, len(words), 2)})
    return out


@pytest.mark.parametrize(
    ("flags", "floor_gb"),
    [
        ({"max-memory": "0.50", "warning-memory": "0.40"}, 0.51),  # the case: floor above the breaker
        ({"max-memory": "0.50", "warning-memory": "0.40"}, 0.4549),
        ({"max-memory": "1.5", "warning-memory": "1.0"}, 1.02),
        ({"max-memory": "1.5", "warning-memory": "1.0", "reset-memory": "0.8"}, 0.93),
        ({"max-memory": "0.8", "warning-memory": "0.6", "reset-memory": "0.3"}, 0.78),
    ],
)
def test_every_piece_of_advice_runs_and_clears_the_floor(flags, floor_gb):
    config, _ = resolve_config(flags=flags, env={})
    floor = int(floor_gb * GB)
    reason = floor_reason(floor, config)
    choices = offered(reason)
    assert choices, reason
    # Every flag named is one to type as written (not "a --reset-memory above 0.51GB").
    assert len(re.findall(r"--[a-z-]+", reason)) == sum(len(advice) for advice in choices), reason
    for advice in choices:
        rerun, _ = resolve_config(flags={**flags, **advice}, env={})  # raises if the advice is refused
        assert rerun.reset_bytes > floor, (advice, reason)
        assert rerun.max_bytes > rerun.reset_bytes
