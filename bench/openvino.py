#!/usr/bin/env python3
"""Whole processes side by side: plain ``encode`` vs memtui's torch, onnx-int8 and openvino backends.

    nice -n -10 python bench/openvino.py [--texts 400] [--rounds 3] [--json PATH]

Texts the project never tuned on: a fresh ``generate.py`` seed, each response's sentences
shuffled and one in five dropped (so no text is in the bundled sample). Each round starts every
contender once as its own process, in a rotated order (interleaved: the shared machine's load
hits all of them alike), and measures

* wall time of the whole process (imports, model load, scan, encode, commit) and texts/s,
* peak RSS (``ru_maxrss`` of the child, from ``wait4``),
* cosine mean / 1st percentile to torch fp32 (the plain ``encode``'s vectors) and the mean
  overlap of each text's 10 nearest neighbours,
* the load average (1 min) before each run.

Ratios are per round (same round, same load) and then the median over rounds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GENERATE = ROOT / "sample_data" / "generate.py"
BACKENDS = ("torch", "onnx-int8", "openvino")
PLAIN = """
import sys, numpy as np
from sentence_transformers import SentenceTransformer
from memtui.embed.model import _packaged_model_path
texts = [line.rstrip("\\n").replace("\\\\n", "\\n") for line in open(sys.argv[1], encoding="utf-8")]
model = SentenceTransformer(str(_packaged_model_path()), device="cpu", local_files_only=True)
vectors = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
np.save(sys.argv[2], vectors.astype(np.float32))
"""


def make_texts(work: Path, n: int, seed: int) -> tuple[Path, list[str]]:
    """An input file of ``n`` distinct, perturbed responses and the texts in order."""
    raw = work / "raw.jsonl.gz"
    domains = max(2, n // 30)
    subprocess.run(
        [sys.executable, str(GENERATE), "--out", str(raw), "--domains", str(domains), "--seed", str(seed), "--quiet"],
        check=True,
        timeout=300,
    )
    rng = random.Random(seed)
    rows, seen = [], set()
    with gzip.open(raw, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            sentences = re.split(r"(?<=[.!?])\s+", row["response"])
            rng.shuffle(sentences)
            kept = [s for s in sentences if rng.random() > 0.2] or sentences[:1]
            text = " ".join(kept)
            if text in seen:
                continue
            seen.add(text)
            rows.append(dict(row, response=text))
            if len(rows) == n:
                break
    path = work / "input.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return path, [r["response"] for r in rows]


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str, str]:
    """(wall s, peak RSS bytes, stdout, stderr) of one whole process."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} exited {proc.returncode}: {stderr.strip().splitlines()[-1:]}")
    return wall, usage.ru_maxrss * 1024, stdout, stderr


def cache_vectors(cache: Path, texts: list[str], backend: str) -> np.ndarray:
    import sqlite3

    from memtui.embed.model import DEFAULT_MODEL_ID
    from memtui.embed.store import key_for

    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    rows = dict(con.execute("SELECT key, vector FROM embeddings").fetchall())
    con.close()
    return np.stack([np.frombuffer(rows[key_for(DEFAULT_MODEL_ID, t, backend)], "<f4") for t in texts])


def accuracy(ref: np.ndarray, got: np.ndarray, k: int = 10) -> dict[str, float]:
    cos = (ref * got).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))

    def top(v: np.ndarray) -> np.ndarray:
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    a, b = top(ref), top(got)
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)])
    return {
        "cos_mean": float(cos.mean()),
        "cos_p1": float(np.percentile(cos, 1)),
        "cos_min": float(cos.min()),
        "knn10": float(overlap),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=90210)
    ap.add_argument("--json", default=None, help="write the results here too")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="memtui-bench-ov-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.setdefault("MEMTUI_MODEL_CACHE", str(work / "models"))
    env["MEMTUI_RUN_DIR"] = str(work / "runs")
    input_path, texts = make_texts(work, args.texts, args.seed)
    plain_texts = work / "texts.txt"
    plain_texts.write_text("".join(t.replace("\n", "\\n") + "\n" for t in texts), encoding="utf-8")
    # The one-time exports are not part of any timed run.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from memtui.embed.backends import ensure_exported as e;"
            "from memtui.embed.model import _packaged_model_path as p; e(p(), 'onnx-int8')",
        ],
        check=True,
        env=env,
        timeout=1800,
    )
    contenders = ["plain", *BACKENDS]
    rounds: list[dict[str, Any]] = []
    ref: np.ndarray | None = None
    tags: dict[str, str] = {}
    for r in range(args.rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        row: dict[str, Any] = {}
        for who in order:
            load = os.getloadavg()[0]
            if who == "plain":
                npy = work / f"plain-{r}.npy"
                wall, rss, _, _ = run_child([sys.executable, "-c", PLAIN, str(plain_texts), str(npy)], env)
                vectors = np.load(npy)
                ref = vectors if ref is None else ref
            else:
                cache = work / f"{who}-{r}.sqlite"
                cmd = [sys.executable, "-m", "memtui", "run", "--headless", "--input", str(input_path)]
                wall, rss, stdout, _ = run_child([*cmd, "--cache", str(cache), "--backend", who], env)
                report = json.loads(stdout)
                assert report["status"] == "success" and report["items_embedded"] == len(texts), report
                tags[who] = report["backend"]
                vectors = cache_vectors(cache, texts, report["backend"])
            row[who] = {"wall_s": wall, "texts_per_s": len(texts) / wall, "peak_rss_bytes": rss, "load": load}
            row[who]["vectors"] = vectors
            print(f"round {r} {who:<10} {wall:7.1f}s {rss / 2**30:.2f}GB load {load:.1f}", file=sys.stderr, flush=True)
        rounds.append(row)
    assert ref is not None
    result: dict[str, Any] = {"texts": len(texts), "rounds": args.rounds, "backends": tags, "per_round": []}
    for row in rounds:
        out = {}
        for who, cell in row.items():
            vectors = cell.pop("vectors")
            out[who] = {**cell, **accuracy(ref, vectors), "x_plain": row["plain"]["wall_s"] / cell["wall_s"]}
        result["per_round"].append(out)
    summary = {}
    for who in contenders:
        cells = [rnd[who] for rnd in result["per_round"]]
        summary[who] = {
            key: statistics.median(c[key] for c in cells)
            for key in ("wall_s", "texts_per_s", "peak_rss_bytes", "load", "x_plain", "cos_mean", "cos_p1", "knn10")
        }
    result["median"] = summary
    print(f"{len(texts)} texts, {args.rounds} interleaved rounds (medians; x plain: per-round wall ratio)")
    print(
        f"{'who':<24} {'wall s':>7} {'texts/s':>8} {'x plain':>8} {'peak RSS':>9} {'cos mean':>9} {'cos p1':>8} "
        f"{'knn10':>6} {'load':>5}"
    )
    for who, s in summary.items():
        name = tags.get(who, "plain encode bs 32")
        print(
            f"{name:<24} {s['wall_s']:>7.1f} {s['texts_per_s']:>8.1f} {s['x_plain']:>7.2f}x "
            f"{s['peak_rss_bytes'] / 2**30:>7.2f}GB {s['cos_mean']:>9.6f} {s['cos_p1']:>8.6f} {s['knn10']:>6.3f} "
            f"{s['load']:>5.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
