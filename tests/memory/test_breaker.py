"""Every transition of the breaker, driven by a fake clock: no sleeping."""

import logging

import pytest

from memtui.memory import BreakerState, CircuitBreaker

from .fakes import gb

CLOSED, WARNING, OPEN, HALF_OPEN = (
    BreakerState.CLOSED,
    BreakerState.WARNING,
    BreakerState.OPEN,
    BreakerState.HALF_OPEN,
)


@pytest.fixture
def breaker(config, clock):
    return CircuitBreaker(config, clock=clock)


@pytest.fixture
def seen(breaker):
    transitions = []
    breaker.add_listener(transitions.append)
    return transitions


def states(transitions):
    return [(t.old, t.new) for t in transitions]


def trip_and_recover(breaker, clock, low=0.5):
    """Open the breaker, then hold memory low until it half-opens; returns the hold it needed."""
    breaker.update(gb(1.6))
    assert breaker.state is OPEN
    needed = breaker.required_hold_s
    breaker.update(gb(low))
    clock.advance(needed)
    breaker.update(gb(low))
    assert breaker.state is HALF_OPEN
    return needed


def test_starts_closed_and_stays_closed_below_warning(breaker, clock, seen):
    assert breaker.state is CLOSED
    for mb in range(0, 1000, 50):
        breaker.update(gb(mb / 1024))
        clock.advance(0.1)
    assert breaker.state is CLOSED and seen == []


def test_warning_at_the_warning_level(breaker, seen):
    breaker.update(gb(1.0) - 1)
    assert breaker.state is CLOSED
    assert breaker.update(gb(1.0)) is WARNING
    assert states(seen) == [(CLOSED, WARNING)]
    assert seen[0].rss == gb(1.0)


def test_trip_from_warning(breaker, seen):
    breaker.update(gb(1.2))
    breaker.update(gb(1.5) - 1)
    assert breaker.state is WARNING
    assert breaker.update(gb(1.5)) is OPEN
    assert states(seen) == [(CLOSED, WARNING), (WARNING, OPEN)]
    assert breaker.trips == 1


def test_trip_straight_from_closed(breaker, seen):
    assert breaker.update(gb(1.9)) is OPEN
    assert states(seen) == [(CLOSED, OPEN)]
    assert breaker.trips == 1


def test_open_stays_open_while_memory_is_high(breaker, clock):
    breaker.update(gb(1.6))
    for _ in range(1000):
        clock.advance(1)
        breaker.update(gb(1.2))  # under max, above the reset level
    assert breaker.state is OPEN
    assert breaker.trips == 1


def test_half_open_only_after_the_hold(breaker, clock, seen):
    breaker.update(gb(1.6))
    clock.advance(5)
    breaker.update(gb(0.9))  # below the reset level: the hold starts now
    clock.advance(0.99)
    assert breaker.update(gb(0.9)) is OPEN
    clock.advance(0.01)
    assert breaker.update(gb(0.9)) is HALF_OPEN
    assert states(seen)[-1] == (OPEN, HALF_OPEN)


def test_hold_restarts_when_memory_bounces_back(breaker, clock):
    breaker.update(gb(1.6))
    breaker.update(gb(0.9))
    clock.advance(0.8)
    breaker.update(gb(1.1))  # above reset: the clock restarts
    clock.advance(0.1)
    breaker.update(gb(0.9))
    clock.advance(0.8)
    assert breaker.update(gb(0.9)) is OPEN
    clock.advance(0.2)
    assert breaker.update(gb(0.9)) is HALF_OPEN


def test_custom_reset_level(clock, config):
    breaker = CircuitBreaker(config.replace(reset_memory_gb=0.6), clock=clock)
    breaker.update(gb(1.6))
    breaker.update(gb(0.7))
    clock.advance(10)
    assert breaker.update(gb(0.7)) is OPEN  # below warning but not below the reset level
    breaker.update(gb(0.5))
    clock.advance(1)
    assert breaker.update(gb(0.5)) is HALF_OPEN


def test_half_open_closes_after_a_successful_probe(breaker, clock, seen):
    trip_and_recover(breaker, clock, low=0.5)
    clock.advance(100)
    assert breaker.update(gb(0.5)) is HALF_OPEN  # only work closes it, not time
    assert breaker.record_success() is CLOSED
    assert states(seen)[-1] == (HALF_OPEN, CLOSED)


def test_half_open_success_near_warning_goes_to_warning(clock, config):
    breaker = CircuitBreaker(config.replace(reset_memory_gb=1.2), clock=clock)
    breaker.update(gb(1.6))
    breaker.update(gb(1.1))
    clock.advance(1)
    assert breaker.update(gb(1.1)) is HALF_OPEN
    assert breaker.record_success() is WARNING


def test_half_open_success_just_under_warning_keeps_hysteresis(clock, config):
    # 0.97GB is under warning (1.0) but above its clear level (0.95): closing there would
    # flap back to WARNING on the next few kB.
    breaker = CircuitBreaker(config.replace(reset_memory_gb=1.2), clock=clock)
    breaker.update(gb(1.6))
    breaker.update(gb(0.97))
    clock.advance(1)
    breaker.update(gb(0.97))
    assert breaker.record_success() is WARNING


def test_record_success_elsewhere_changes_nothing(breaker, seen):
    assert breaker.record_success() is CLOSED
    breaker.update(gb(1.2))
    assert breaker.record_success() is WARNING
    breaker.update(gb(1.6))
    assert breaker.record_success() is OPEN
    assert states(seen) == [(CLOSED, WARNING), (WARNING, OPEN)]


def test_retrip_from_half_open(breaker, clock, seen):
    trip_and_recover(breaker, clock)
    assert breaker.update(gb(1.5)) is OPEN
    assert states(seen)[-1] == (HALF_OPEN, OPEN)
    assert breaker.trips == 2


def test_half_open_above_warning_but_below_max_stays_half_open(breaker, clock):
    trip_and_recover(breaker, clock)
    assert breaker.update(gb(1.3)) is HALF_OPEN


def test_consecutive_trips_lengthen_the_hold_up_to_the_cap(breaker, clock):
    holds = []
    for _ in range(6):
        holds.append(trip_and_recover(breaker, clock))
    assert holds == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # reset_hold_s doubling, capped at reset_hold_max_s
    assert breaker.trips == 6
    assert breaker.snapshot().consecutive_trips == 6


def test_longer_hold_is_really_enforced(breaker, clock):
    trip_and_recover(breaker, clock)
    breaker.update(gb(1.6))  # second trip: 2 s
    breaker.update(gb(0.5))
    clock.advance(1.5)
    assert breaker.update(gb(0.5)) is OPEN
    clock.advance(0.5)
    assert breaker.update(gb(0.5)) is HALF_OPEN


def test_consecutive_count_resets_after_a_stable_stretch(breaker, clock):
    trip_and_recover(breaker, clock)
    trip_and_recover(breaker, clock)
    breaker.record_success()
    assert breaker.state is CLOSED and breaker.snapshot().consecutive_trips == 2
    clock.advance(7.9)
    breaker.update(gb(0.5))
    assert breaker.snapshot().consecutive_trips == 2  # not stable for reset_hold_max_s yet
    clock.advance(0.1)
    breaker.update(gb(0.5))
    assert breaker.snapshot().consecutive_trips == 0
    assert trip_and_recover(breaker, clock) == 1.0
    assert breaker.trips == 3  # the total is never reset


def test_stable_stretch_counts_even_without_samples_in_between(breaker, clock):
    # The processor samples only between batches: a long quiet batch then a spike must
    # not be treated as a consecutive trip.
    trip_and_recover(breaker, clock)
    trip_and_recover(breaker, clock)
    breaker.record_success()
    clock.advance(60)
    breaker.update(gb(1.6))
    assert breaker.snapshot().consecutive_trips == 1
    assert breaker.required_hold_s == 1.0


def test_no_flapping_around_the_warning_level(breaker, clock, seen):
    for i in range(200):
        breaker.update(gb(1.0) + (1 if i % 2 else -1) * gb(0.01))
        clock.advance(0.1)
    assert states(seen) == [(CLOSED, WARNING)]


def test_warning_clears_only_below_the_hysteresis_band_for_the_hold(breaker, clock, seen):
    breaker.update(gb(1.1))
    breaker.update(gb(0.96))  # under warning, inside the 5% band
    clock.advance(30)
    assert breaker.update(gb(0.96)) is WARNING
    breaker.update(gb(0.9))
    clock.advance(0.5)
    assert breaker.update(gb(0.9)) is WARNING
    clock.advance(0.5)
    assert breaker.update(gb(0.9)) is CLOSED
    assert states(seen) == [(CLOSED, WARNING), (WARNING, CLOSED)]


def test_no_flapping_around_the_breaker_level(breaker, clock, seen):
    for i in range(200):
        breaker.update(gb(1.5) + (1 if i % 2 else -1) * gb(0.01))
        clock.advance(0.1)
    assert breaker.trips == 1
    assert states(seen) == [(CLOSED, WARNING), (WARNING, OPEN)]


def test_manual_trip(breaker, seen):
    breaker.trip(gb(0.7), "operator pressed c")
    assert breaker.state is OPEN and breaker.trips == 1
    assert seen[-1].reason == "operator pressed c"
    breaker.trip(gb(0.7))
    assert breaker.trips == 1  # already open


def test_transition_details_and_time_in_state(breaker, clock, seen):
    start = clock.now()
    clock.advance(3)
    breaker.update(gb(1.2))
    clock.advance(2.5)
    snap = breaker.snapshot()
    assert snap.state is WARNING
    assert snap.since == start + 3
    assert snap.time_in_state_s == pytest.approx(2.5)
    assert seen[0].at == start + 3 and seen[0].reason


def test_remove_listener(breaker):
    got = []
    breaker.add_listener(got.append)
    breaker.remove_listener(got.append)
    breaker.remove_listener(got.append)  # twice is harmless
    breaker.update(gb(1.2))
    assert got == []


def test_a_failing_listener_does_not_break_the_breaker(breaker, caplog):
    later = []

    def bad(_t):
        raise RuntimeError("face crashed")

    breaker.add_listener(bad)
    breaker.add_listener(later.append)
    with caplog.at_level(logging.ERROR, logger="memtui"):
        assert breaker.update(gb(1.2)) is WARNING
    assert len(later) == 1
    assert "face crashed" in caplog.text


def test_set_config_rejudges_at_once(breaker, seen, config):
    breaker.update(gb(0.9))
    breaker.set_config(config.replace(max_memory_gb=0.8, warning_memory_gb=0.5))
    assert breaker.state is OPEN
    assert breaker.config.max_memory_gb == 0.8


def test_listener_may_read_the_breaker(breaker):
    # Listeners are called outside the lock, so reading the breaker from one cannot deadlock.
    got = []
    breaker.add_listener(lambda t: got.append(breaker.snapshot().state))
    breaker.update(gb(1.6))
    assert got == [OPEN]


def test_stale_samples_are_ignored(breaker, clock):
    breaker.update(gb(1.6), at=clock.now())
    breaker.update(gb(0.5), at=clock.now() + 0.5)
    breaker.update(gb(1.2), at=clock.now() + 0.2)  # read before the 0.5 GB one, delivered after
    clock.advance(1.5)
    assert breaker.update(gb(0.5)) is HALF_OPEN  # the hold started at +0.5 was not restarted


def test_stable_stretch_may_move_between_closed_and_warning(clock, config):
    breaker = CircuitBreaker(config.replace(reset_memory_gb=1.2), clock=clock)
    trip_and_recover(breaker, clock)
    trip_and_recover(breaker, clock)
    breaker.update(gb(0.97))
    assert breaker.record_success() is WARNING
    for i in range(100):  # 10 s between warning and normal, never near the breaker level
        breaker.update(gb(1.1) if (i // 20) % 2 else gb(0.5))
        clock.advance(0.1)
    assert breaker.snapshot().consecutive_trips == 0
    breaker.update(gb(1.6))
    assert breaker.required_hold_s == 1.0


def test_half_open_does_not_count_as_stable(breaker, clock):
    trip_and_recover(breaker, clock)
    clock.advance(60)  # half-open for a minute: memory never proved normal under load
    breaker.update(gb(0.5))
    breaker.update(gb(1.6))
    assert breaker.snapshot().consecutive_trips == 2
