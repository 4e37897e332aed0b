"""Done must mean done: a domain counts as finished only while every response it holds now has its
vector and its summary is of what it holds now; an id repeated in the input is refused, never a
row silently replaced; a cache from before (no fingerprints) stays valid.

Real runs of ``python -m memtui`` with the real model on the real generator's data, real SQLite.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.cli import make_sample, memtui
from tests.support.hostile import error_lines


@pytest.fixture(scope="module")
def sample_lines(tmp_path_factory) -> list[str]:
    path = make_sample(tmp_path_factory.mktemp("input") / "s.jsonl.gz", domains=2, responses=24, seed=11)
    return gzip.open(path).read().decode("utf-8").splitlines()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def run(source: Path, cache: Path, report: Path) -> tuple[int, dict, str]:
    done = memtui(
        "run", "--mode", "cache", "--headless", "--input", source, "--cache", cache, "--report", report, timeout=600
    )
    return done.returncode, (json.loads(report.read_text()) if report.exists() else {}), done.stderr


def rows(cache: Path, sql: str, *args) -> list[tuple]:
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def missing_vectors(cache: Path) -> int:
    return rows(cache, "SELECT count(*) FROM responses r LEFT JOIN embeddings e ON e.key = r.key WHERE e.key IS NULL")[
        0
    ][0]


def domain_of(lines: list[str], index: int) -> str:
    return json.loads(lines[index])["domain"]


def with_added(lines: list[str], domain: str, extra: int, tag: str = "new") -> list[str]:
    """``lines`` with ``extra`` new responses appended to ``domain``'s lines (kept together)."""
    last = max(i for i, line in enumerate(lines) if json.loads(line)["domain"] == domain)
    new = [
        json.dumps(
            {
                "id": f"{tag}-{k}",
                "domain": domain,
                "model": "claude",
                "prompt_type": "security",
                "response": f"{tag} {k}",
            }
        )
        for k in range(extra)
    ]
    return lines[: last + 1] + new + lines[last + 1 :]


def test_a_finished_domain_that_gains_three_responses_is_redone(tmp_path, sample_lines):
    first = domain_of(sample_lines, 0)
    cache, report = tmp_path / "c.sqlite", tmp_path / "r.json"
    code, rep, err = run(write(tmp_path / "in.jsonl", sample_lines), cache, report)
    assert code == 0, err
    held = rows(cache, "SELECT responses, agreement FROM domains WHERE domain = ?", first)[0]

    code, rep, err = run(write(tmp_path / "in.jsonl", with_added(sample_lines, first, 3)), cache, report)
    assert code == 0, err
    assert rep["status"] == "success"
    assert rep["items_embedded"] == 3  # only the new ones: the others' vectors were kept
    assert rep["domains_done"] == rep["domains_total"] == 2
    assert rep["responses_committed"] >= held[0] + 3
    assert missing_vectors(cache) == 0
    assert rows(cache, "SELECT count(*) FROM responses WHERE id LIKE 'new-%'")[0][0] == 3
    now = rows(cache, "SELECT responses, agreement FROM domains WHERE domain = ?", first)[0]
    assert now[0] == held[0] + 3 and now[1] != held[1]  # the summary is of what it holds now

    # A third run has nothing left: done now means done.
    code, rep, err = run(tmp_path / "in.jsonl", cache, report)
    assert (code, rep["items_embedded"], rep["items_skipped"]) == (0, 0, len(sample_lines) + 3), err


def test_a_response_removed_from_a_finished_domain_leaves_no_stale_row(tmp_path, sample_lines):
    first = domain_of(sample_lines, 0)
    cache, report = tmp_path / "c.sqlite", tmp_path / "r.json"
    assert run(write(tmp_path / "in.jsonl", sample_lines), cache, report)[0] == 0
    gone = json.loads(sample_lines[0])["id"]
    code, rep, err = run(write(tmp_path / "in.jsonl", sample_lines[1:]), cache, report)
    assert code == 0, err
    assert rep["items_embedded"] == 0
    assert rows(cache, "SELECT count(*) FROM responses WHERE id = ?", gone)[0][0] == 0
    count = sum(json.loads(line)["domain"] == first for line in sample_lines[1:])
    assert rows(cache, "SELECT responses FROM domains WHERE domain = ?", first)[0][0] == count


def test_a_repeated_id_is_refused_naming_it_and_its_lines(tmp_path, sample_lines):
    """The same id in two domains used to replace the first row (5 vectors, 2 rows, success)."""
    second_start = next(
        i for i, line in enumerate(sample_lines) if domain_of(sample_lines, i) != domain_of(sample_lines, 0)
    )
    record = json.loads(sample_lines[second_start])
    record["id"] = json.loads(sample_lines[0])["id"]
    lines = [*sample_lines]
    lines[second_start] = json.dumps(record)
    cache = tmp_path / "c.sqlite"
    done = memtui(
        "run", "--mode", "cache", "--headless", "--input", write(tmp_path / "in.jsonl", lines), "--cache", cache
    )
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert f"in.jsonl:{second_start + 1}:" in line and "line 1" in line and record["id"] in line
    assert "Traceback" not in done.stderr
    assert not cache.exists()  # refused at the scan, before the cache or the model


def test_a_cache_from_before_fingerprints_stays_valid_and_is_checked_again(tmp_path, sample_lines):
    cache, report = tmp_path / "c.sqlite", tmp_path / "r.json"
    source = write(tmp_path / "in.jsonl", sample_lines)
    assert run(source, cache, report)[0] == 0
    con = sqlite3.connect(cache)  # make it what an older memtui wrote: no fingerprint column, no new indexes
    con.execute("DROP INDEX responses_group")
    con.execute("ALTER TABLE domains DROP COLUMN fingerprint")
    con.commit()
    con.close()
    code, rep, err = run(source, cache, report)
    assert code == 0, err
    assert (rep["items_embedded"], rep["domains_done"]) == (0, 2)  # checked again, nothing re-embedded
    assert rows(cache, "SELECT count(*) FROM domains WHERE fingerprint IS NOT NULL")[0][0] == 2
    code, rep, err = run(source, cache, report)
    assert (code, rep["items_skipped"]) == (0, len(sample_lines)), err


def test_an_id_another_input_put_in_the_cache_is_not_replaced(tmp_path):
    """Two inputs share a cache; the second reuses an id of the first in another domain: refused (exit 2),
    the first input's row kept."""
    cache, report = tmp_path / "c.sqlite", tmp_path / "r.json"

    def line(rid: str, domain: str, text: str) -> str:
        return json.dumps({"id": rid, "domain": domain, "model": "a", "prompt_type": "p", "response": text})

    first = write(tmp_path / "a.jsonl", [line("r1", "alpha.example", "first text"), line("r2", "alpha.example", "x")])
    assert run(first, cache, report)[0] == 0
    second = write(tmp_path / "b.jsonl", [line("r9", "beta.example", "other"), line("r1", "beta.example", "second")])
    code, rep, err = run(second, cache, report)
    assert (code, rep["exit_code"], rep["status"]) == (2, 2, "failed"), err
    message = rep["error"]
    assert "Traceback" not in err and message in err
    assert "line 2" in message and "'r1'" in message and "alpha.example" in message
    assert rows(cache, "SELECT domain FROM responses WHERE id = 'r1'") == [("alpha.example",)]
    assert rows(cache, "SELECT responses FROM domains WHERE domain = 'alpha.example'") == [(2,)]
