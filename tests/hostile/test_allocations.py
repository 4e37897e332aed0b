"""memtui's own allocations against huge domains: the summary, a domain's vectors, the scan, the report.

A domain used to be held whole (its responses, all its vectors until its summary) and
summarised with an n x n float64 matrix: 20,000 responses asked 3.2 GB and were OOM-killed
in a 2 GB cgroup, again on every rerun (the vectors committed with the summary). Now a
domain is worked in pieces and its agreement is computed exactly from running sums.

The scale runs use the real CacheJob, Runner, SQLite and reader, with the fake embedder
(tests.support.executors; the real model would take hours for 200,000 responses), in a
process of their own inside a real memory cgroup, and compare peak RSS growth.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.agreement import AgreementSums
from memtui.embed.store import CacheStore, summarize_domain
from memtui.jobs.pieces import PIECE_RESPONSES
from memtui.records import Response
from tests.support.cli import REPO
from tests.test_limits import memory_cgroup

MB = 1 << 20
CGROUP_LIMIT = 1024 * MB


def pairwise_agreement(groups: list[tuple[str, str, np.ndarray]]) -> float | None:
    """The old definition, by the matrix: mean cosine over cross-model pairs within each prompt type."""
    by_prompt: dict[str, list[tuple[str, np.ndarray]]] = {}
    for prompt, model, vec in groups:
        by_prompt.setdefault(prompt, []).append((model, vec))
    total, pairs = 0.0, 0
    for members in by_prompt.values():
        models = np.array([m for m, _ in members])
        cross = models[:, None] != models[None, :]
        if not cross.any():
            continue
        vecs = np.stack([np.asarray(v, dtype=np.float64) for _, v in members])
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms == 0.0, 1.0, norms)
        total += float((vecs @ vecs.T)[cross].sum()) / 2.0
        pairs += int(cross.sum()) // 2
    return total / pairs if pairs else None


def random_domain(rng: np.random.Generator, n: int) -> list[tuple[str, str, np.ndarray]]:
    prompts = [f"p{i}" for i in range(int(rng.integers(1, 6)))]
    models = [f"m{i}" for i in range(int(rng.integers(1, 5)))]
    dim = int(rng.choice([3, 16, 384]))
    bias = rng.standard_normal(dim) * rng.uniform(0, 3)  # correlated vectors: scores far from 0
    rows = []
    for _ in range(n):
        vec = (rng.standard_normal(dim) + bias) * rng.uniform(0.01, 100)
        if rng.random() < 0.02:
            vec = np.zeros(dim)  # a zero vector counts in the pairs, adds nothing
        rows.append((str(rng.choice(prompts)), str(rng.choice(models)), vec.astype(np.float32)))
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_streaming_agreement_is_the_pairwise_one(seed):
    rng = np.random.default_rng(seed)
    rows = random_domain(rng, int(rng.integers(1, 300)))
    expected = pairwise_agreement(rows)
    sums = AgreementSums()
    for prompt, model, vec in sorted(rows, key=lambda row: (row[0], row[1])):
        sums.add(prompt, model, vec)
    got = sums.score()
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert abs(got - expected) <= 1e-9 * max(1.0, abs(expected))
    responses = [Response(str(i), "d", m, p, f"t{i}", i + 1) for i, (p, m, _) in enumerate(rows)]
    vectors = {r.id: v for r, (_, _, v) in zip(responses, rows)}
    summary = summarize_domain("d", responses, lambda r: vectors[r.id])
    assert summary.agreement == got or abs(summary.agreement - expected) <= 1e-9 * max(1.0, abs(expected))


def test_summary_read_back_from_the_cache_in_pieces_is_the_pairwise_one(tmp_path):
    """The cache summarises a domain from its rows, a few at a time: the same score as the matrix."""
    rng = np.random.default_rng(7)
    rows = [(p, m, v) for p, m, v in random_domain(rng, 3000) if v.shape == (384,)] or [
        ("p", m, rng.standard_normal(384).astype(np.float32)) for m in ("a", "b") * 1500
    ]
    responses = [Response(f"r{i}", "d", m, p, f"text {i}", i + 1) for i, (p, m, _) in enumerate(rows)]
    with CacheStore.open(tmp_path / "c.sqlite", "m", 384) as store:
        vectors = {store.key(r.text): v for r, (_, _, v) in zip(responses, rows)}
        half = len(responses) // 2
        store.commit_batch({store.key(r.text): vectors[store.key(r.text)] for r in responses[:half]}, responses[:half])
        rest = responses[half:]
        (summary,) = store.commit_batch(
            {store.key(r.text): vectors[store.key(r.text)] for r in rest}, rest, finish=[("d", b"fp")]
        )
    expected = pairwise_agreement(rows)
    assert summary.responses == len(rows)
    assert summary.fingerprint == b"fp"
    assert sum(summary.counts.values()) == len(rows)
    assert expected is not None and abs(summary.agreement - expected) <= 1e-9 * max(1.0, abs(expected))


# -- whole runs at scale --------------------------------------------------------------------------


def write_domain(path: Path, n: int, *, domain: str = "huge", start: int = 0) -> Path:
    """One domain of ``n`` short responses (no ids: each gets a content hash), three models, seven prompts."""
    with open(path, "a") as fh:
        for i in range(start, start + n):
            line = {"domain": domain, "model": f"m{i % 3}", "prompt_type": f"p{i % 7}", "response": f"answer {i}"}
            fh.write(json.dumps(line) + "\n")
    return path


def driver(procs: Path | None, source: Path, cache: Path, delay_s: float = 0.0) -> subprocess.Popen[str]:
    """tests/hostile/domain_run.py as its own process (joining the cgroup ``procs`` before it starts)."""
    cmd = [sys.executable, "-m", "tests.hostile.domain_run", str(source), str(cache), str(delay_s)]
    if procs is not None:
        cmd = ["sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)


def finish(proc: subprocess.Popen[str], timeout: float = 900) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"driver ended {proc.returncode} (137: OOM-killed):\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def counts(cache: Path) -> tuple[int, int, int]:
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=30)
    try:
        return tuple(
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("embeddings", "responses", "domains")
        )
    finally:
        con.close()


@pytest.mark.slow  # huge domains in child runs: minutes on a loaded machine
def test_peak_rss_does_not_grow_with_the_domain(tmp_path):
    """20,000 and 200,000 responses in one domain, each run in a 1 GB memory cgroup: the peak's growth over
    the process's start is about the same (proportional growth would be 10x); both succeed, all committed."""
    growth = {}
    with memory_cgroup(CGROUP_LIMIT) as procs:
        for n in (20_000, 200_000):
            source = write_domain(tmp_path / f"in{n}.jsonl", n)
            cache = tmp_path / f"c{n}.sqlite"
            result = finish(driver(procs, source, cache))
            assert (result["status"], result["embedded"]) == ("success", n)
            assert counts(cache) == (n, n, 1)
            growth[n] = (result["peak_kib"] - result["base_kib"]) * 1024
    small, large = growth[20_000], growth[200_000]
    assert large < 2 * small + 64 * MB, f"peak growth {small / MB:.0f}MB at 20k, {large / MB:.0f}MB at 200k"
    assert large < 512 * MB  # far within the default breaker (1.5 GB)


def wait_until(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def vectors_in(cache: Path) -> int:
    try:
        return counts(cache)[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # a child run killed and resumed
def test_kill_inside_a_huge_domain_resumes_inside_it(tmp_path):
    """SIGKILL halfway through one domain of 20,000: its committed pieces' vectors survive, the rerun embeds
    only the rest, and the end has every vector, every row and the summary."""
    n = 20_000
    source = write_domain(tmp_path / "in.jsonl", n)
    cache = tmp_path / "c.sqlite"
    proc = driver(None, source, cache, delay_s=0.005)
    try:
        wait_until(lambda: vectors_in(cache) >= 4 * PIECE_RESPONSES or proc.poll() is not None, 300, "vectors")
        assert proc.poll() is None, "the run ended before it could be killed mid-domain"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = vectors_in(cache)
    assert 0 < kept < n
    assert counts(cache)[2] == 0  # the domain is not done
    result = finish(driver(None, source, cache))
    assert result["status"] == "success"
    assert result["embedded"] == n - kept  # only the responses without a vector
    assert counts(cache) == (n, n, 1)


@pytest.mark.model
@pytest.mark.slow  # the real model in a child run
def test_real_model_run_of_a_domain_in_several_pieces(tmp_path):
    """The real CLI and model in a 2 GB memory cgroup: one domain of three pieces and more is committed whole,
    and its stored agreement is the pairwise one over the vectors the cache holds."""
    from tests.test_limits import memtui_in

    n = 3 * PIECE_RESPONSES + 100
    source = tmp_path / "in.jsonl"
    with open(source, "w") as fh:
        for i in range(n):
            line = {"domain": "one", "model": f"m{i % 2}", "prompt_type": f"p{i % 3}", "response": f"reply {i % 97} x"}
            fh.write(json.dumps(line) + "\n")
    cache, report = tmp_path / "c.sqlite", tmp_path / "r.json"
    with memory_cgroup(2 * CGROUP_LIMIT) as procs:
        done = memtui_in(
            procs, "run", "--mode", "cache", "--headless", "--input", source, "--cache", cache, "--report", report,
            timeout=900,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rep = json.loads(report.read_text())
    assert (rep["status"], rep["domains_done"], rep["responses_committed"]) == ("success", 1, n)
    assert rep["peak_memory_gb"] < 1.5  # the default breaker
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        stored = con.execute(
            "SELECT r.prompt_type, r.model, e.vector FROM responses r JOIN embeddings e ON e.key = r.key"
        ).fetchall()
        (agreement,) = con.execute("SELECT agreement FROM domains WHERE domain = 'one'").fetchone()
    finally:
        con.close()
    assert len(stored) == n
    expected = pairwise_agreement([(p, m, np.frombuffer(v, dtype="<f4")) for p, m, v in stored])
    assert expected is not None and abs(agreement - expected) <= 1e-9 * abs(expected)
