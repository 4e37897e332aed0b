"""The examples of docs/jobs.md, each run as the docs say (real processes, the real tokenizer and model)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from memtui.paths import SAMPLE_INPUT
from tests.jobs.user_job_support import results
from tests.support.cli import REPO, memtui, memtui_env

EXAMPLES = REPO / "examples"


def _env(**extra: str) -> dict[str, str]:
    return memtui_env(PYTHONPATH=str(EXAMPLES), **extra)


def _sample_lines(path: Path, n: int) -> Path:
    with gzip.open(SAMPLE_INPUT, "rt") as src, open(path, "w") as out:
        for _ in range(n):
            out.write(src.readline())
    return path


def test_the_leaky_function_completes_under_a_low_breaker_where_a_plain_loop_goes_past_it(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": i, "text": "x" * 10}) + "\n" for i in range(30)))
    plain = subprocess.run(
        [sys.executable, str(EXAMPLES / "leaky_job.py"), str(items)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr
    plain_peak = json.loads(plain.stdout)["peak_memory_gb"]
    assert plain_peak > 0.7  # 30 calls keep 30 MB each: past the 0.5 GB limit

    out = tmp_path / "leak.sqlite"
    args = ["run", "--job", "leaky_job:leak", "--input", items, "--output", out, "--headless"]
    done = memtui(*args, "--max-memory", "0.5", "--job-batch", "1", env=_env())
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "success" and report["items_total"] == 30
    assert report["cleanups"] >= 1 and report["memory_warnings"] + report["breaker_trips"] >= 1
    # the breaker is checked between calls: at most one call (30 MB) past it, far below the plain loop
    assert report["peak_memory_gb"] < 0.5 + 0.1 < plain_peak
    assert len(results(out)) == 30


def test_token_counts_and_languages_with_the_models_tokenizer(tmp_path):
    items = _sample_lines(tmp_path / "items.jsonl", 60)
    out = tmp_path / "tokens.sqlite"
    done = memtui("run", "--job", "token_language:count", "--input", items, "--output", out, "--headless", env=_env())
    assert done.returncode == 0, done.stderr
    rows = results(out)
    assert len(rows) == 60
    from transformers import AutoTokenizer

    from memtui.embed.default_model import packaged_model_path

    tok = AutoTokenizer.from_pretrained(str(packaged_model_path()))
    first = json.loads(items.read_text().splitlines()[0])
    assert rows[0]["key"] == first["id"]
    assert rows[0]["result"]["tokens"] == len(tok(first["response"])["input_ids"])
    languages = [r["result"]["language"] for r in rows]
    assert languages.count("en") > 40  # the sample is English


def test_near_duplicates_per_domain_from_the_embedding_cache(tmp_path):
    cache = tmp_path / "answers.sqlite"
    built = memtui("run", "--mode", "cache", "--limit", "2", "--cache", cache, "--headless", env=_env())
    assert built.returncode == 0, built.stderr
    domains = tmp_path / "domains.jsonl"
    listed = subprocess.run(
        [sys.executable, str(EXAMPLES / "near_duplicates.py"), str(cache)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    domains.write_text(listed.stdout)
    names = [json.loads(line)["id"] for line in listed.stdout.splitlines()]
    assert len(names) == 2
    out = tmp_path / "dups.sqlite"
    done = memtui(
        "run",
        "--job",
        "near_duplicates:pairs",
        "--input",
        domains,
        "--output",
        out,
        "--headless",
        env=_env(NEAR_DUP_CACHE=str(cache), NEAR_DUP_THRESHOLD="0.8"),
    )
    assert done.returncode == 0, done.stderr
    rows = results(out)
    assert [r["key"] for r in rows] == names
    report = json.loads(built.stdout)
    assert sum(r["result"]["responses"] for r in rows) == report["items_total"]
    for row in rows:
        for a, b, sim in row["result"]["pairs"]:
            assert a != b and 0.8 <= sim <= 1.0001
