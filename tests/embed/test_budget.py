"""The adaptive token budget: a state machine on a fake clock, its wiring in the Embedder and the Runner.

Timings are made up from a speed curve (tokens/s as a function of the budget) so each test
states which budget is fastest and checks the budget finds it; the real model is used once,
for the Embedder's wiring.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from memtui.embed.budget import HIGH, LOW, AdaptiveBudget, ladder
from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor
from memtui.memory.units import GB
from memtui.runner import Runner
from tests.memory.fakes import ScriptedProbe
from tests.support.executors import FakeExecutor
from tests.support.fakes import FakeClock
from tests.support.inputs import write_input


def peaked(best: int, slope: float = 0.25):
    """tokens/s that falls by ``slope`` per doubling away from ``best``."""

    def speed(budget: int) -> float:
        steps = abs(np.log2(budget / best))
        return 10_000.0 * (1 - slope) ** steps

    return speed


def run(budget: AdaptiveBudget, clock: FakeClock, speed, sub_batches: int, fill: float = 1.0) -> list[int]:
    """Feed ``sub_batches`` sub-batches, each ``fill`` of its budget, timed by ``speed``; return the budgets used."""
    used = []
    for _ in range(sub_batches):
        b = budget.next()
        tokens = int(b * fill)
        with budget.measure(b, tokens):
            clock.advance(tokens / speed(b))
        used.append(b)
    return used


def test_ladder_is_powers_of_two_between_the_bounds():
    assert ladder(512, 4096) == [512, 1024, 2048, 4096]
    assert ladder(600, 3000) == [512, 1024, 2048]
    assert ladder(LOW, HIGH) == [512, 1024, 2048]  # never more activations than the old fixed 2048


@pytest.mark.parametrize("best", [512, 1024, 2048, 4096])
def test_it_settles_on_the_fastest_budget(best):
    clock = FakeClock()
    budget = AdaptiveBudget(2048, high=4096, clock=clock)
    used = run(budget, clock, peaked(best), 200)
    assert budget.current == best
    assert used[-50:].count(best) >= 46  # settled: at most the odd probe elsewhere


def test_it_follows_the_load_when_the_fastest_budget_moves():
    clock = FakeClock()
    budget = AdaptiveBudget(2048, clock=clock)
    run(budget, clock, peaked(2048), 300)  # quiet cores: probes lost, so they became rare
    assert budget.current == 2048 and budget.hold == budget.max_hold
    run(budget, clock, peaked(1024), 2 * budget.max_hold + 10)  # contended cores
    assert budget.current == 1024


def test_a_neighbour_within_the_hysteresis_does_not_win():
    clock = FakeClock()
    budget = AdaptiveBudget(2048, clock=clock, hysteresis=0.05)
    run(budget, clock, lambda b: 10_000.0 * (1.03 if b == 1024 else 1.0), 200)
    assert budget.current == 2048 and budget.moves == []
    run(budget, clock, lambda b: 10_000.0 * (1.08 if b == 1024 else 1.0), 200)
    assert budget.moves[0] == (2048, 1024)


def test_losing_probes_back_off_so_a_settled_run_rarely_probes():
    clock = FakeClock()
    budget = AdaptiveBudget(2048, clock=clock, hold=12, max_hold=96)
    used = run(budget, clock, peaked(2048), 1000)
    probes = sum(1 for b in used if b != 2048)
    assert budget.hold == 96
    assert probes / len(used) < 0.05  # each probe: 3 sub-batches off the best rung per ~100


def test_it_never_goes_above_high_nor_below_low():
    clock = FakeClock()
    faster_when_bigger = AdaptiveBudget(2048, clock=clock, high=4096)
    assert max(run(faster_when_bigger, clock, lambda b: float(b), 300)) == 4096
    assert faster_when_bigger.current == 4096
    faster_when_smaller = AdaptiveBudget(2048, clock=clock, low=512)
    assert min(run(faster_when_smaller, clock, lambda b: 1e7 / b, 300)) == 512
    assert faster_when_smaller.current == 512


def test_memory_tight_means_the_smallest_budget_and_nothing_learnt():
    clock = FakeClock()
    budget = AdaptiveBudget(2048, clock=clock)
    budget.memory_tight = True
    used = run(budget, clock, peaked(512), 100)
    assert set(used) == {LOW} and budget.moves == [] and budget.current == 2048
    budget.memory_tight = False
    assert budget.next() == 2048  # speed decides again, from where it was


def test_under_filled_and_failed_sub_batches_teach_nothing():
    clock = FakeClock()
    budget = AdaptiveBudget(2048, clock=clock, hold=4)
    run(budget, clock, peaked(1024), 50, fill=0.4)  # the input's end or the max-batch cap: not the budget's doing
    assert budget.moves == [] and budget.next() == 2048
    with pytest.raises(MemoryError), budget.measure(2048, 2048):
        clock.advance(1.0)
        raise MemoryError
    assert budget._held == 0


@pytest.mark.model
def test_the_embedder_cuts_each_sub_batch_at_the_budgets_choice(real_embedder):
    from memtui.embed.model import Embedder

    assert Embedder(token_budget=1024).budget is None  # a budget given is a budget kept
    texts = [" ".join(["word"] * n) + f" {i}" for i, n in enumerate([5, 9, 14, 20, 30, 45, 60, 80] * 3)]
    embedder = Embedder()
    embedder._model = real_embedder.load()  # the session's model, this Embedder's own budget
    ticks = itertools.count()  # every sub-batch takes one second: no rung is faster, yet each is probed
    budget = embedder.budget = AdaptiveBudget(256, low=64, high=256, hold=2, clock=lambda: float(next(ticks)))
    chosen: list[int] = []
    measure = budget.measure

    def measure_logged(b: int, tokens: int):
        chosen.append(b)
        return measure(b, tokens)

    budget.measure = measure_logged  # type: ignore[method-assign]
    lengths = real_embedder.token_lengths(texts)
    expected = real_embedder.load().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    sub_batches = 0
    for indices, vectors in embedder.encode_iter(texts):
        b = chosen[-1]
        assert len(indices) == 1 or len(indices) * max(lengths[i] for i in indices) <= b
        np.testing.assert_allclose(vectors, expected[indices], atol=2e-5)
        sub_batches += 1
    assert len(set(chosen)) > 1, "a probe ran: the budget changed between sub-batches of one encode"
    assert sub_batches == len(chosen)


class BudgetedExecutor(FakeExecutor):
    """The fast fake executor with a real adaptive budget: records what it would cut each sub-batch at."""

    def __init__(self) -> None:
        super().__init__(sub_batch=3)
        self.budget = AdaptiveBudget(2048, clock=FakeClock())
        self.asked: list[int] = []

    def encode_iter(self, texts):
        for item in super().encode_iter(texts):
            self.asked.append(self.budget.next())
            yield item


@pytest.mark.parametrize(("rss_gb", "expected"), [(0.5, 2048), (1.2, LOW)])
def test_the_runner_keeps_the_budget_within_admission(tmp_path, rss_gb, expected):
    source = write_input(tmp_path / "in.jsonl", domains=3, per_domain=9)
    executor = BudgetedExecutor()
    job = CacheJob(source, tmp_path / "cache.sqlite", executor, model_id="hash-test")
    monitor = MemoryMonitor(MemoryConfig(sample_interval_s=0.01), probe=ScriptedProbe(rss=int(rss_gb * GB)))
    report = Runner(job, monitor).run()
    assert report["status"] == "success"
    assert set(executor.asked) == {expected}  # 1.2GB: WARNING (default 1.0/1.5GB), memory wins
