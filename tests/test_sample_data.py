"""Checks for the bundled sample data set and its deterministic generator."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "sample_data"
SAMPLE = SAMPLE_DIR / "responses.jsonl.gz"
GENERATOR = SAMPLE_DIR / "generate.py"

FIELDS = ("id", "domain", "model", "prompt_type", "response")
MODELS = {"claude", "gpt-4o", "deepseek"}
PROMPT_TYPES = {"trustworthiness", "reputation", "security"}


def _load_generator():
    spec = importlib.util.spec_from_file_location("memtui_sample_generate", GENERATOR)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gen():
    return _load_generator()


@pytest.fixture(scope="module")
def raw_lines() -> list[bytes]:
    with gzip.open(SAMPLE, "rb") as f:
        return f.read().splitlines(keepends=True)


@pytest.fixture(scope="module")
def records(raw_lines) -> list[dict]:
    return [json.loads(line) for line in raw_lines]


def _words(text: str) -> int:
    return len(text.split())


def _read_records(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------- determinism


def test_regeneration_is_byte_identical(gen, tmp_path, raw_lines):
    # Default domains/seed, exactly what `python sample_data/generate.py` writes;
    # fast compression level because only the decompressed bytes are compared.
    out = tmp_path / "regen.jsonl.gz"
    assert gen.write(str(out), gen.generate_records(), level=1) == 16_350
    with gzip.open(out, "rb") as f:
        regenerated = f.read()
    committed = b"".join(raw_lines)
    assert len(regenerated) == len(committed)
    assert hashlib.sha256(regenerated).hexdigest() == hashlib.sha256(committed).hexdigest()


def test_gzip_header_has_no_timestamp_or_name():
    head = SAMPLE.read_bytes()[:10]
    assert head[:2] == b"\x1f\x8b"
    assert head[3] & 0x08 == 0, "FNAME flag set"
    assert head[4:8] == b"\x00\x00\x00\x00", "non-zero MTIME"


def test_small_set_is_deterministic_and_seed_sensitive(gen, tmp_path):
    a, b, c = tmp_path / "a.gz", tmp_path / "b.gz", tmp_path / "c.gz"
    gen.main(["--out", str(a), "--domains", "12", "--quiet"])
    gen.main(["--out", str(b), "--domains", "12", "--quiet"])
    gen.main(["--out", str(c), "--domains", "12", "--seed", "7", "--quiet"])
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()) != gzip.decompress(c.read_bytes())


# --------------------------------------------------------- committed content


def test_counts(records):
    assert len(records) == 16_350
    assert len({r["domain"] for r in records}) == 444
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)


def test_fields_present_and_valid(records):
    for r in records:
        assert tuple(r) == FIELDS
        for k in FIELDS:
            assert isinstance(r[k], str) and r[k].strip(), (r["id"], k)
        assert r["model"] in MODELS
        assert r["prompt_type"] in PROMPT_TYPES
        assert r["id"].startswith("d") and r["model"] in r["id"]


def test_domains_contiguous_and_cover_all_combos(records):
    order: list[str] = []
    combos: dict[str, set] = {}
    for r in records:
        d = r["domain"]
        if not order or order[-1] != d:
            assert d not in combos, f"lines of {d} are not contiguous"
            order.append(d)
            combos[d] = set()
        combos[d].add((r["model"], r["prompt_type"]))
    assert len(order) == 444
    for d, seen in combos.items():
        assert len(seen) == 9, d
    per_domain = Counter(r["domain"] for r in records)
    assert min(per_domain.values()) >= 9
    assert len(set(per_domain.values())) > 10, "per-domain counts should vary"
    assert abs(statistics.mean(per_domain.values()) - 36.8) < 0.1


def test_ids_are_stable_format(records):
    assert records[0]["id"].split("-")[0] == "d0001"
    abbr = {"trustworthiness": "trust", "reputation": "rep", "security": "sec"}
    pattern = re.compile(r"d(\d{4})-(claude|gpt-4o|deepseek)-(trust|rep|sec)-(\d+)")
    domain_index: dict[str, str] = {}
    for r in records:
        m = pattern.fullmatch(r["id"])
        assert m, r["id"]
        assert m.group(2) == r["model"] and m.group(3) == abbr[r["prompt_type"]]
        assert domain_index.setdefault(r["domain"], m.group(1)) == m.group(1)
    assert len(set(domain_index.values())) == 444


def test_length_distribution(records):
    words = sorted(_words(r["response"]) for r in records)
    n = len(words)
    median = statistics.median(words)
    assert 50 <= median <= 400
    in_band = sum(50 <= w <= 400 for w in words) / n
    assert in_band > 0.8, in_band
    long_share = sum(w > 1000 for w in words) / n
    assert 0.015 <= long_share <= 0.04, long_share
    assert words[-1] <= 5000
    assert words[int(0.99 * n)] > 1000


def test_texts_mostly_distinct_and_mention_domain(records):
    texts = Counter(r["response"] for r in records)
    dup_lines = sum(c for c in texts.values() if c > 1)
    assert dup_lines / len(records) < 0.01
    assert dup_lines > 0, "expected a handful of canned duplicate answers"
    mentioning = sum(r["domain"] in r["response"] for r in records)
    assert mentioning / len(records) > 0.97


def test_model_styles_differ(records):
    def share(model, pred):
        sel = [r["response"] for r in records if r["model"] == model]
        return sum(map(pred, sel)) / len(sel)

    assert share("gpt-4o", lambda t: "###" in t) > 0.9
    assert share("deepseek", lambda t: "Risk score:" in t) > 0.9
    med = {m: statistics.median(_words(r["response"]) for r in records if r["model"] == m) for m in MODELS}
    assert med["deepseek"] < med["claude"] and med["deepseek"] < med["gpt-4o"]


def test_file_is_reasonably_small():
    assert SAMPLE.stat().st_size < 15 * 1024 * 1024


# ------------------------------------------------------------- CLI options


def test_domains_option(gen, tmp_path):
    out = tmp_path / "small.jsonl.gz"
    gen.main(["--out", str(out), "--domains", "20", "--quiet"])
    recs = _read_records(out)
    assert len({r["domain"] for r in recs}) == 20
    assert len(recs) == round(20 * 16_350 / 444)
    for d in {r["domain"] for r in recs}:
        assert len({(r["model"], r["prompt_type"]) for r in recs if r["domain"] == d}) == 9


def test_scale_option(gen, tmp_path):
    out = tmp_path / "scaled.jsonl.gz"
    gen.main(["--out", str(out), "--domains", "5", "--scale", "3", "--quiet"])
    recs = _read_records(out)
    base = list(gen.generate_records(5))
    assert len(recs) == 3 * len(base)
    assert len({r["domain"] for r in recs}) == 15
    assert len({r["id"] for r in recs}) == len(recs)
    assert [r["response"] for r in recs[: len(base)]] == [r["response"] for r in base]
    # copies keep grouping by domain
    seen, last = set(), None
    for r in recs:
        if r["domain"] != last:
            assert r["domain"] not in seen
            seen.add(r["domain"])
            last = r["domain"]


def test_cli_runs_as_script(tmp_path):
    out = tmp_path / "cli.jsonl.gz"
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out), "--domains", "3", "--seed", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stderr
    recs = _read_records(out)
    assert len({r["domain"] for r in recs}) == 3
