"""The open-breaker wait: escalation order, the floor that ends a run early, and time that does not count."""

from __future__ import annotations

import json

from memtui.memory import MemoryConfig
from memtui.memory.escalation import ESCALATE_AFTER_ROUNDS, SETTLE_ROUNDS, OpenBreakerWait
from tests.memory.fakes import FakeClock, gb
from tests.support.cli import memtui
from tests.support.inputs import write_input

CONFIG = MemoryConfig(max_memory_gb=0.5, warning_memory_gb=0.4, breaker_timeout_s=300,
                      backoff_initial_s=0.25, backoff_max_s=8.0)


def drive(wait: OpenBreakerWait, clock: FakeClock, rss_of_round, loaded: list[bool], rounds: int = 100):
    """Run the wait like the runner does: obey each step, sleep what it says; return the steps."""
    steps = []
    for i in range(rounds):
        step = wait.step(rss_of_round(i), loaded[0])
        steps.append(step)
        if step.give_up:
            break
        if step.unload:
            loaded[0] = False
        clock.sleep(step.sleep_s)
    return steps


def test_cleanup_first_then_unload_after_the_escalation_rounds():
    clock = FakeClock()
    steps = drive(OpenBreakerWait(CONFIG, clock), clock, lambda i: gb(0.45), [True], rounds=ESCALATE_AFTER_ROUNDS + 1)
    assert steps[0].cleanup == "circuit breaker open" and not steps[0].unload
    unloads = [i for i, s in enumerate(steps) if s.unload]
    assert unloads == [ESCALATE_AFTER_ROUNDS], "the model goes only after the cleanup rounds, and once"
    assert steps[ESCALATE_AFTER_ROUNDS].cleanup == "model unloaded"


def test_a_floor_above_the_reset_level_ends_the_wait_early_naming_it_and_the_flags():
    clock = FakeClock()
    wait = OpenBreakerWait(CONFIG, clock)
    steps = drive(wait, clock, lambda i: gb(0.52), [True])
    last = steps[-1]
    assert last.give_up and last.floor_bytes == gb(0.52)
    assert "0.52GB" in last.give_up and "--max-memory" in last.give_up and "--warning-memory" in last.give_up
    assert wait.open_s < 60 < CONFIG.breaker_timeout_s, "it did not sit out the 5-minute timeout"
    assert len(steps) == 1 + ESCALATE_AFTER_ROUNDS + SETTLE_ROUNDS + 1
    assert any(s.cleanup for s in steps[ESCALATE_AFTER_ROUNDS + 1:-1]), "a cleanup ran after the unload"


def test_memory_still_falling_is_not_a_floor():
    clock = FakeClock()
    wait = OpenBreakerWait(CONFIG, clock)
    falling = lambda i: gb(1.5) - i * gb(0.05)  # noqa: E731 - 50 MB less every round
    steps = drive(wait, clock, falling, [False], rounds=15)
    assert not any(s.give_up for s in steps)


def test_without_a_model_the_escalation_is_complete_at_once():
    clock = FakeClock()
    steps = drive(OpenBreakerWait(CONFIG, clock), clock, lambda i: gb(0.6), [False])
    assert not any(s.unload for s in steps)
    assert steps[-1].give_up and len(steps) == 1 + SETTLE_ROUNDS + 1


def test_below_the_reset_level_it_never_gives_up_early():
    clock = FakeClock()
    steps = drive(OpenBreakerWait(CONFIG, clock), clock, lambda i: gb(0.3), [False], rounds=20)
    assert not any(s.give_up for s in steps)


def test_the_timeout_counts_running_time_only():
    clock = FakeClock()
    config = CONFIG.replace(breaker_timeout_s=20.0)
    wait = OpenBreakerWait(config, clock)
    falling = lambda i: gb(2.0) - i * gb(0.05)  # noqa: E731 - never a floor: only the timeout can end it
    step = wait.step(falling(0), False)
    clock.sleep(step.sleep_s)
    clock.advance(3600)  # SIGSTOPped for an hour (or a suspended VM) during this round
    step = wait.step(falling(1), False)
    assert step.give_up is None, "an hour stopped is not an hour of waiting"
    assert wait.suspended_s > 3590 and wait.open_s < 5
    steps = drive(wait, clock, lambda i: falling(i + 2), [False])
    assert steps[-1].give_up and "stayed open" in steps[-1].give_up
    assert 20 <= wait.open_s < 20 + 8 + 2


def test_the_cli_ends_early_when_the_breaker_is_below_memtuis_own_floor(tmp_path):
    """The issue's case in a real process: levels below what Python itself needs. Ends in seconds, not 5 min."""
    data = write_input(tmp_path / "in.jsonl", domains=3)
    result = memtui("run", "--headless", "--input", data, "--cache", tmp_path / "c.sqlite",
                    "--max-memory", "0.05", "--warning-memory", "0.04", "--backoff-max", "0.5", timeout=120)
    report = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr
    assert report["status"] == "aborted" and report["memory_floor_gb"] > 0.04
    assert "floor" in report["reason"] and "--max-memory" in report["reason"]
    assert report["duration_s"] < 60
    assert "Traceback" not in result.stderr and "floor" in result.stderr
