"""A cache run killed with SIGKILL at ten different points, each followed by a resume.

Real subprocesses, the real model, a real SQLite file: after every kill the
cache must be consistent, and in the end hold exactly one vector per distinct
response, with each kill costing at most the one batch that was in flight.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from memtui.embed.model import DEFAULT_MODEL_ID
from memtui.embed.store import key_for
from tests.support.cli import memtui, popen_memtui
from tests.support.inputs import write_input

pytestmark = [pytest.mark.model, pytest.mark.slow]

DOMAINS = 14
KILLS = 10
# Where each kill lands, after the run's first new commit: at once, and at growing
# delays that put the kill inside the next batch's encode or commit.
KILL_DELAYS_S = [0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3]


def read_cache(path: Path) -> dict:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {
            "keys": [k for (k,) in con.execute("SELECT key FROM embeddings")],
            "responses": con.execute("SELECT id, domain, key FROM responses").fetchall(),
            "domains": {
                d: (n, json.loads(c)) for d, n, c in con.execute("SELECT domain, responses, counts FROM domains")
            },
        }
    finally:
        con.close()


def domains_done(cache: Path) -> int:
    """Committed domains; 0 while the file is still being created (a kill may even land there).

    Polled every 20 ms while the run works: one count, not the whole cache read (which took CPU from
    the run it waits for)."""
    try:
        con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM domains").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def assert_consistent(cache: Path) -> dict:
    state = read_cache(cache)
    keys = set(state["keys"])
    assert len(keys) == len(state["keys"]), "duplicate vectors"
    assert all(key in keys for _, _, key in state["responses"]), "a response row without its vector"
    per_domain: dict[str, int] = {}
    for _, domain, _ in state["responses"]:
        per_domain[domain] = per_domain.get(domain, 0) + 1
    for domain, (count, counts) in state["domains"].items():
        assert per_domain.get(domain) == count == sum(counts.values()), f"summary of {domain} disagrees"
    return state


def admissions(trace: Path) -> list[str]:
    """Every domain admitted in a batch, across all runs recorded in the trace."""
    names = []
    for line in trace.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("kind") == "batch":
            names.extend(record["domains"])
    return names


def test_ten_kills_and_resumes_lose_nothing_and_duplicate_nothing(tmp_path):
    source = write_input(tmp_path / "in.jsonl", domains=DOMAINS, per_domain=27, words=40)
    cache = tmp_path / "cache.sqlite"
    kills = 0
    for delay in KILL_DELAYS_S:
        before = domains_done(cache)
        if before == DOMAINS:
            break
        proc = popen_memtui("run", "--headless", "--input", source, "--cache", cache, "--batch-max", "1")
        try:
            deadline = time.monotonic() + 180
            while domains_done(cache) == before:
                if proc.poll() is not None:
                    break
                assert time.monotonic() < deadline, "no progress after a restart"
                time.sleep(0.02)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        if domains_done(cache):
            assert_consistent(cache)
    assert kills >= 8, "the input ran out before the kills did; make it larger"

    final = memtui("run", "--headless", "--input", source, "--cache", cache)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert report["status"] == "success" and report["domains_done"] == DOMAINS
    state = assert_consistent(cache)
    texts = {json.loads(line)["response"] for line in source.read_text().splitlines()}
    assert set(state["keys"]) == {key_for(DEFAULT_MODEL_ID, t) for t in texts}
    assert len(state["responses"]) == DOMAINS * 27
    admitted = admissions(cache.with_name(cache.name + ".trace"))
    assert len(admitted) <= DOMAINS + kills, f"more than one batch redone per kill: {len(admitted)} admissions"
