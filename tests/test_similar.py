"""memtui similar on a real cache made by a real run with the real model.

A response's own text finds that response first with a score of at least 0.999, whether
its vector is taken from the cache (the same key: no model loaded) or embedded again by
the model (a text that differs only in trailing space has another key, the same tokens).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.reader import open_cache
from memtui.vectors.similar import nearest
from tests.support.cli import memtui, memtui_in_process
from tests.support.inputs import write_input
from tests.test_export import INT8, LARGE, add_backend_rows

DOMAINS, PER_DOMAIN = 4, 3


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("similar")
    inp, cache = write_input(folder / "in.jsonl", DOMAINS, PER_DOMAIN), folder / "cache.sqlite"
    done = memtui("run", "--headless", "--input", inp, "--cache", cache, timeout=600)
    assert done.returncode == 0, done.stderr
    return cache, [json.loads(line) for line in inp.read_text().splitlines()]


def similar(*args: str | Path) -> dict:
    done = memtui("similar", *args, "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(("suffix", "how"), [("", "no model loaded"), ("  ", "embedded with")])
def test_a_responses_own_text_finds_it_first(real_cache, suffix, how):
    cache, rows = real_cache
    target = rows[5]

    body = similar(target["response"] + suffix, "--cache", cache, "--top", "3")

    assert how in body["query"]["vector"]
    first = body["matches"][0]
    assert first["id"] == target["id"] and first["domain"] == target["domain"]
    assert (first["model"], first["prompt_type"], first["backend"]) == (target["model"], target["prompt_type"], "torch")
    assert first["score"] >= 0.999
    assert len(body["matches"]) == 3 and body["matches"][1]["score"] < first["score"]
    assert body["texts_kept"] is False and first["text"] is None


def test_the_table_says_the_cache_keeps_no_texts(real_cache):
    cache, rows = real_cache
    done = memtui("similar", rows[0]["response"], "--cache", cache, "--top", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["score", "domain", "model", "prompt_type", "id"]
    assert lines[1].split()[-1] == rows[0]["id"] and len(lines) == 3
    assert "keeps no response texts" in done.stderr


def test_a_cached_key_is_the_query_without_a_model(real_cache):
    cache, rows = real_cache
    with open_cache(cache) as reader:
        row = next(r for r in reader if r.id == rows[7]["id"])

    body = similar("--key", row.key_hex, "--cache", cache, "--top", "1", "--domain", row.domain)

    assert "no model loaded" in body["query"]["vector"]
    assert body["matches"][0]["key"] == row.key_hex and body["matches"][0]["score"] >= 0.9999


def test_domain_and_backend_narrow_the_search(real_cache, tmp_path):
    cache, rows = real_cache
    body = similar(rows[0]["response"], "--cache", cache, "--domain", "site002.example", "--top", "50")
    assert {m["domain"] for m in body["matches"]} == {"site002.example"} and len(body["matches"]) == PER_DOMAIN


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--key", "zz"], ["not hex"]),
        (["--key", "ab" * 8], ["8 bytes"]),
        (["--key", "ab" * 32], ["not in cache"]),
        ([], ["TEXT", "--key"]),
        (["some text", "--key", "ab" * 32], ["not both"]),
        (["some text", "--backend", "onnx"], ["no onnx vectors"]),
        (["some text", "--domain", "nowhere.example"], ["nowhere.example"]),
        (["some text", "--top", "0"], ["--top"]),
    ],
)
def test_bad_queries_are_one_line_and_exit_2(real_cache, args, words):
    """The CLI's main in this process; the first case also through python -m memtui (the real entry point)."""
    cache, _ = real_cache
    check_bad_query(memtui_in_process("similar", *args, "--cache", cache), words)
    if args == ["--key", "zz"]:
        check_bad_query(memtui("similar", *args, "--cache", cache), words)


def check_bad_query(done: subprocess.CompletedProcess[str], words: list[str]) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memtui: error:"), done.stderr
    for word in words:
        assert word in lines[0]


def test_a_cache_with_two_backends_asks_which_unless_the_run_would_pick_one(real_cache, tmp_path):
    cache, rows = real_cache
    copy = tmp_path / "two.sqlite"
    copy.write_bytes(cache.read_bytes())
    copy.chmod(0o600)
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    add_backend_rows(copy, inp, INT8)

    body = similar(rows[2]["response"], "--cache", copy, "--top", "1")  # the run's default: torch
    assert body["query"]["backend"] == "torch" and body["matches"][0]["id"] == rows[2]["id"]
    body = similar("--key", body["matches"][0]["key"], "--cache", copy, "--backend", "onnx-int8", "--top", "2")
    assert {m["backend"] for m in body["matches"]} == {INT8}


@pytest.mark.slow  # builds a 200k-row cache
def test_the_scan_is_chunked_with_a_bounded_heap_and_says_how_far_it_got(large_cache):
    lines: list[str] = []
    with open_cache(large_cache) as reader:
        row = next(iter(reader))
        matches = nearest(reader, row.vector, top=5, backend="torch", log=lines.append)
        scores = [m.score for m in matches]
        assert matches[0].id == row.id and scores == sorted(scores, reverse=True) and len(matches) == 5
        # the same five as every score computed and sorted (200,000 floats)
        unit = row.vector / np.linalg.norm(row.vector)
        brute = np.concatenate([b.matrix @ unit / np.linalg.norm(b.matrix, axis=1) for b in reader.batches()])
        assert np.allclose(np.sort(brute)[::-1][:5], scores, atol=1e-5)
    assert lines and f"comparing the query with {LARGE} vectors" in lines[0]
