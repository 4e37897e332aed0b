"""The one admission policy, on a fake clock: batch sizes, MemoryError retries, the open-breaker wait.

Both the engine (memtui.runner) and SmartBatchProcessor use memtui.memory.admission;
this is where its rules are tested. tests/test_runner.py checks the engine applies them.
"""

from __future__ import annotations

import json

import pytest

from memtui.memory import BreakerState, BreakerTransition, CircuitBreaker, MemoryConfig
from memtui.memory.admission import (
    ESCALATE_AFTER_ROUNDS,
    SETTLE_ROUNDS,
    Admission,
    HeadroomWait,
    MemoryGate,
    OpenBreakerWait,
    WarningCleanup,
)
from memtui.memory.headroom import CLEAR_AT_BATCHES, Headroom
from tests.memory.fakes import FakeClock, gb
from tests.support.cli import memtui
from tests.support.inputs import write_input

CONFIG = MemoryConfig(
    max_memory_gb=0.5, warning_memory_gb=0.4, breaker_timeout_s=300, backoff_initial_s=0.25, backoff_max_s=8.0
)


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
    assert any(s.cleanup for s in steps[ESCALATE_AFTER_ROUNDS + 1 : -1]), "a cleanup ran after the unload"


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
    assert wait.open_s == pytest.approx(20.0), "the last sleep is what is left, not a whole backoff"


def test_the_cli_ends_early_when_the_breaker_is_below_memtuis_own_floor(tmp_path):
    """The issue's case in a real process: levels below what Python itself needs. Ends in seconds, not 5 min."""
    data = write_input(tmp_path / "in.jsonl", domains=3)
    result = memtui(
        "run",
        "--headless",
        "--input",
        data,
        "--cache",
        tmp_path / "c.sqlite",
        "--max-memory",
        "0.05",
        "--warning-memory",
        "0.04",
        "--backoff-max",
        "0.5",
        "--breaker-timeout",
        "3600",
        timeout=900,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr
    assert report["status"] == "aborted" and report["memory_floor_gb"] > 0.04
    assert "floor" in report["reason"] and "--max-memory" in report["reason"]
    # Ended by the floor, not by the hour's timeout (no speed assumed: a loaded machine may take minutes).
    assert report["duration_s"] < 3600 and "stayed open" not in report["reason"]
    assert "Traceback" not in result.stderr and "floor" in result.stderr


# -- batch size and MemoryError retries --------------------------------------------------------

POLICY = MemoryConfig(
    batch_size_max=8, batch_size_min=2, memory_error_retries=2, backoff_initial_s=0.25, backoff_max_s=2.0
)


def test_the_batch_size_follows_the_breaker_until_a_memory_error():
    admission = Admission(POLICY)
    sizes = {state: admission.batch_size(state, POLICY) for state in BreakerState}
    assert sizes == {BreakerState.CLOSED: 8, BreakerState.WARNING: 2, BreakerState.HALF_OPEN: 2, BreakerState.OPEN: 0}


def test_a_memory_error_halves_the_cap_and_each_success_grows_it_by_one():
    admission = Admission(POLICY)
    retry = admission.memory_error(8, POLICY)
    assert not retry.give_up and retry.size == 4 and retry.sleep_s == 0.25
    sizes = []
    for _ in range(6):
        sizes.append(admission.batch_size(BreakerState.CLOSED, POLICY))
        admission.succeeded(POLICY)
    assert sizes == [4, 5, 6, 7, 8, 8], "AIMD: one more per success, back to the breaker's size"
    assert admission.cap is None
    admission.memory_error(6, POLICY)
    assert admission.batch_size(BreakerState.WARNING, POLICY) == 2, "the breaker's size still caps the cap"
    assert admission.batch_size(BreakerState.OPEN, POLICY) == 0


def test_only_single_item_failures_count_and_a_success_forgets_them():
    admission = Admission(POLICY)
    retries = [admission.memory_error(n, POLICY) for n in (8, 4, 2)]
    assert [r.errors for r in retries] == [0, 0, 0] and not any(r.give_up for r in retries)
    assert [r.size for r in retries] == [4, 2, 1]
    assert [r.sleep_s for r in retries] == [0.25, 0.5, 1.0], "the retry backs off"
    assert [admission.memory_error(1, POLICY).give_up for _ in range(3)] == [False, False, True]
    assert admission.errors == 3  # memory_error_retries (2) tries at size one, the third gives up
    admission.succeeded(POLICY)
    assert admission.errors == 0
    assert admission.memory_error(1, POLICY).sleep_s == 0.25, "a success resets the backoff"


def test_a_mid_run_config_change_applies_to_the_next_batch():
    admission = Admission(POLICY)
    smaller = POLICY.replace(batch_size_max=3)
    assert admission.batch_size(BreakerState.CLOSED, smaller) == 3
    admission = Admission(POLICY)
    admission.memory_error(8, POLICY)  # a cap of 4, above the new maximum of 3
    assert admission.batch_size(BreakerState.CLOSED, smaller) == 3
    admission.succeeded(smaller)
    assert admission.cap is None, "a cap at or above the new maximum is done with"


# -- cleanups and warnings ------------------------------------------------------------------------


def test_one_warning_cleanup_per_entry_into_warning():
    clock = FakeClock()
    breaker = CircuitBreaker(MemoryConfig(reset_hold_s=1.0, reset_hold_max_s=8.0), clock=clock)
    cleanup = WarningCleanup()
    dues = []
    for rss in (0.5, 1.1, 1.2, 1.6):  # CLOSED, WARNING (entry), WARNING, OPEN
        breaker.update(gb(rss))
        dues.append(cleanup.due(breaker.snapshot()))
        clock.advance(0.1)
    for _ in range(15):  # below the reset level (1.0) for the hold, above the warning clear level (0.95)
        breaker.update(gb(0.97))
        clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success()  # still above the clear level: WARNING again, a new entry
    assert breaker.state is BreakerState.WARNING
    dues.append(cleanup.due(breaker.snapshot()))
    dues.append(cleanup.due(breaker.snapshot()))
    assert dues == [False, True, False, False, True, False]


@pytest.mark.parametrize(
    "old, new, warns",
    [
        (BreakerState.CLOSED, BreakerState.WARNING, True),
        (BreakerState.CLOSED, BreakerState.OPEN, True),
        (BreakerState.WARNING, BreakerState.OPEN, False),
        (BreakerState.HALF_OPEN, BreakerState.WARNING, False),
        (BreakerState.HALF_OPEN, BreakerState.OPEN, False),
        (BreakerState.OPEN, BreakerState.HALF_OPEN, False),
        (BreakerState.WARNING, BreakerState.CLOSED, False),
    ],
)
def test_leaving_closed_upward_is_what_counts_as_a_warning(old, new, warns):
    assert BreakerTransition(old, new, gb(1), 0.0, "").counts_as_warning is warns


# -- the open breaker: the rules both loops share --------------------------------------------------


def test_the_wait_never_sleeps_past_the_deadline():
    clock = FakeClock()
    config = CONFIG.replace(breaker_timeout_s=10.0, backoff_initial_s=3.0, backoff_max_s=8.0)
    wait = OpenBreakerWait(config, clock, floor=False)
    steps = drive(wait, clock, lambda i: gb(0.6), [False])
    assert [s.sleep_s for s in steps[:-1]] == [3.0, 6.0, 1.0], "the last sleep is what is left of 10 s"
    assert steps[-1].give_up and clock.sleeps == [3.0, 6.0, 1.0]
    assert wait.open_s == pytest.approx(10.0)


def test_one_cleanup_cadence_every_few_rounds():
    clock = FakeClock()
    steps = drive(OpenBreakerWait(CONFIG, clock, floor=False), clock, lambda i: gb(0.6), [False], rounds=13)
    cleaned = [i for i, s in enumerate(steps) if s.cleanup]
    assert cleaned == list(range(0, 13, ESCALATE_AFTER_ROUNDS))
    assert ESCALATE_AFTER_ROUNDS <= SETTLE_ROUNDS, "every settle window the floor is judged on holds a cleanup"


def test_without_floor_detection_flat_memory_waits_out_the_timeout():
    clock = FakeClock()
    config = CONFIG.replace(breaker_timeout_s=20.0)
    wait = OpenBreakerWait(config, clock, floor=False)
    steps = drive(wait, clock, lambda i: gb(0.6), [False])
    assert steps[-1].give_up and "stayed open" in steps[-1].give_up and steps[-1].floor_bytes is None
    assert sum(clock.sleeps) == pytest.approx(20.0)


def test_a_wait_on_a_clock_reading_1e10_still_ends():
    # A remainder smaller than the clock's resolution (~2 us at 1e10 s) would never be slept off.
    clock = FakeClock(start=1e10 + 0.1)
    config = CONFIG.replace(breaker_timeout_s=7.3, backoff_initial_s=0.1, backoff_max_s=0.7)
    wait = OpenBreakerWait(config, clock, floor=False)
    steps = drive(wait, clock, lambda i: gb(0.6), [False])
    assert steps[-1].give_up and len(steps) < 50
    assert wait.open_s == pytest.approx(7.3, abs=1e-3)


def test_cleanups_that_free_nothing_back_off_and_one_that_frees_restores_the_cadence():
    clock = FakeClock()
    wait = OpenBreakerWait(CONFIG.replace(breaker_timeout_s=10_000.0), clock, floor=False)
    cleaned = []
    for i in range(50):
        step = wait.step(gb(0.6), False)
        if step.cleanup:
            cleaned.append(i)
            wait.cleaned(0 if i < 30 else 50 << 20)
        clock.sleep(step.sleep_s)
    assert cleaned == [0, 6, 18, 42, 45, 48], "nothing freed doubles the rounds to the next; freeing restores 3"


def test_the_countdown_runs_between_rounds_and_stops_at_the_round_s_allowance():
    clock = FakeClock()
    wait = OpenBreakerWait(CONFIG, clock)
    step = wait.step(gb(0.45), True)
    assert wait.remaining_at(clock()) == pytest.approx(300.0)
    clock.advance(step.sleep_s / 2)
    assert wait.remaining_at(clock()) == pytest.approx(300.0 - step.sleep_s / 2)
    clock.advance(1000.0)  # suspended: the round counts only its wait and the slack
    assert wait.remaining_at(clock()) == pytest.approx(300.0 - step.sleep_s - 2.0)


def test_a_full_admission_is_closed_and_uncapped():
    config = MemoryConfig(batch_size_max=8)
    admission = Admission(config)
    assert admission.full(BreakerState.CLOSED, config)
    assert not admission.full(BreakerState.WARNING, config) and not admission.full(BreakerState.HALF_OPEN, config)
    admission.memory_error(8, config)  # capped at 4 until it grows back
    assert not admission.full(BreakerState.CLOSED, config)
    for _ in range(4):
        admission.succeeded(config)
    assert admission.full(BreakerState.CLOSED, config)


# -- the headroom brake ---------------------------------------------------------------------------


def low_headroom(left: int, cost: int = gb(0.3)) -> Headroom:
    return Headroom(
        bytes=left,
        binds="cgroup v1 /jobs/a",
        batch_cost_bytes=cost,
        low=True,
        clear_bytes=int(cost * CLEAR_AT_BATCHES),
    )


def drive_headroom(wait: HeadroomWait, clock: FakeClock, left_of_round, rounds: int = 100):
    """Run the brake's wait like the runner does: pass each round's reading, sleep what it says."""
    steps = []
    for i in range(rounds):
        step = wait.step(wait.seen(low_headroom(left_of_round(i))))
        steps.append(step)
        if step.give_up:
            break
        clock.sleep(step.sleep_s)
    return steps


def test_the_brake_takes_the_smallest_size_until_a_batch_goes_through():
    admission = Admission(POLICY)
    admission.brake()
    assert admission.batch_size(BreakerState.CLOSED, POLICY) == POLICY.batch_size_min
    assert not admission.full(BreakerState.CLOSED, POLICY), "the token budget takes its smallest sub-batch"
    assert admission.batch_size(BreakerState.OPEN, POLICY) == 0
    admission.succeeded(POLICY)
    assert admission.batch_size(BreakerState.CLOSED, POLICY) == POLICY.batch_size_max
    assert admission.full(BreakerState.CLOSED, POLICY)


def test_a_headroom_that_never_comes_back_ends_the_wait_with_a_reason_never_unloading():
    """A neighbour holds the cgroup: the open breaker's cadence and floor rule end it, no hang, no unload."""
    clock = FakeClock()
    wait = HeadroomWait(CONFIG, clock, low_headroom(gb(0.1)))
    steps = drive_headroom(wait, clock, lambda i: gb(0.1))
    assert not any(s.unload for s in steps), "the brake never unloads the model"
    assert steps[0].cleanup == "memory headroom low"
    assert steps[ESCALATE_AFTER_ROUNDS].cleanup == "memory headroom still low"
    last = steps[-1]
    assert last.give_up and len(steps) == 1 + ESCALATE_AFTER_ROUNDS + SETTLE_ROUNDS + 1, "the breaker's floor rule"
    assert "0.10GB to cgroup v1 /jobs/a" in last.give_up and "cgroup v1 /jobs/a" in last.give_up
    assert "waiting cannot help" in last.give_up and "giving up after committing" in last.give_up
    assert wait.open_s < 60 < CONFIG.breaker_timeout_s


def test_a_headroom_coming_back_slowly_is_waited_for_until_the_timeout():
    clock = FakeClock()
    wait = HeadroomWait(CONFIG.replace(breaker_timeout_s=40.0), clock, low_headroom(gb(0.1)))
    rising = lambda i: gb(0.1) + i * gb(0.02)  # noqa: E731 - 20 MB more every round, never past the clear level
    steps = drive_headroom(wait, clock, lambda i: min(rising(i), gb(0.37)))
    assert steps[-1].give_up and "stayed below one batch's cost for 40s" in steps[-1].give_up
    assert wait.open_s == pytest.approx(40.0)


def test_without_floor_detection_a_flat_headroom_waits_out_the_timeout():
    clock = FakeClock()
    wait = HeadroomWait(CONFIG.replace(breaker_timeout_s=30.0), clock, low_headroom(gb(0.1)), floor=False)
    steps = drive_headroom(wait, clock, lambda i: gb(0.1))
    assert steps[-1].give_up and "stayed below" in steps[-1].give_up
    assert wait.open_s == pytest.approx(30.0)


def test_cleanups_that_free_nothing_back_off_in_the_brake_too():
    clock = FakeClock()
    wait = HeadroomWait(CONFIG.replace(breaker_timeout_s=10_000), clock, low_headroom(gb(0.1)), floor=False)
    cleanups = []
    for i in range(40):
        step = wait.step(wait.seen(low_headroom(gb(0.1))))
        if step.cleanup:
            cleanups.append(i)
            wait.cleaned(0)
        clock.sleep(step.sleep_s)
    gaps = [b - a for a, b in zip(cleanups, cleanups[1:])]
    assert gaps[:3] == [3, 12, 24], gaps  # each cleanup that freed nothing doubles the rounds to the next


# -- the gate between two batches ---------------------------------------------------------------


def test_a_worker_s_sub_batch_is_the_breaker_s_share_braked_and_capped_in_its_own_units():
    admission = Admission(POLICY)
    full = 64
    assert admission.scaled_size(BreakerState.CLOSED, POLICY, full) == full
    share = full * POLICY.batch_size_min // POLICY.batch_size_max
    assert admission.scaled_size(BreakerState.WARNING, POLICY, full) == max(1, share)
    assert admission.scaled_size(BreakerState.OPEN, POLICY, full) == 0
    admission.brake()
    assert admission.scaled_size(BreakerState.CLOSED, POLICY, full) == max(1, share)
    admission.succeeded(POLICY)
    admission.memory_error(full, POLICY)  # a MemoryError on 64 texts: the cap is 32 texts, not 32 items
    assert admission.scaled_size(BreakerState.CLOSED, POLICY, full) == full // 2


def test_the_gate_cleans_up_once_per_warning_waits_out_an_open_breaker_and_brakes_on_low_headroom():
    clock = FakeClock()
    breaker = CircuitBreaker(MemoryConfig(reset_hold_s=1.0, reset_hold_max_s=8.0), clock=clock)
    admission = Admission(CONFIG)
    gate = MemoryGate(admission, clock)
    breaker.update(gb(0.5))
    assert gate.step(CONFIG, breaker.snapshot(), None, gb(0.5), True) == gate.step(
        CONFIG, breaker.snapshot(), None, gb(0.5), True
    )
    breaker.update(gb(1.1))  # WARNING
    first = gate.step(CONFIG, breaker.snapshot(), None, gb(1.1), True)
    again = gate.step(CONFIG, breaker.snapshot(), None, gb(1.1), True)
    assert first.admit and first.warning_cleanup and again.admit and not again.warning_cleanup
    breaker.update(gb(1.6))  # OPEN
    opened = gate.step(CONFIG, breaker.snapshot(), None, gb(1.6), True)
    assert not opened.admit and opened.started and opened.wait is not None
    assert opened.wait.cleanup == "circuit breaker open"
    clock.sleep(opened.wait.sleep_s)
    held = gate.step(CONFIG, breaker.snapshot(), None, gb(1.6), True)
    assert not held.admit and not held.started, "one episode, not a new wait each round"
    assert not admission.braked
    for _ in range(15):
        breaker.update(gb(0.5))
        clock.advance(0.1)
    low = low_headroom(gb(0.1))
    braked = gate.step(CONFIG, breaker.snapshot(), low, gb(0.5), True)
    assert not braked.admit and braked.started and gate.waiting_on_headroom
    assert braked.wait is not None and braked.wait.cleanup == "memory headroom low"
    assert admission.braked, "the next batch takes the smallest size"
    assert gate.step(CONFIG, breaker.snapshot(), None, gb(0.5), True).admit and gate.wait is None
