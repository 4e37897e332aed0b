"""``memtui tune``: every available backend on a sample of the user's own data, side by side.

Each backend runs in its own child process (``python -m memtui.jobs.tune --child``),
so its peak RSS is its own VmHWM and an ONNX child never imports torch. The
torch child goes first and leaves its fp32 vectors for the others' cosines.
The recommendation is the fastest backend that passes the accuracy gate
(per-text cosine to torch fp32: mean >= 0.99, 1st percentile >= 0.98), else torch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from memtui.embed.backends import BACKENDS, TORCH, available

GATE_MEAN = 0.99
GATE_P1 = 0.98
DEFAULT_LIMIT = 500
#: The most texts tune compares: its kNN overlap holds two n x n float64 matrices (2 x 128 MB at 4,000),
#: so the sample is bounded whatever --limit asks.
MAX_LIMIT = 4000
#: How long one backend's child may take before it is ended and its row says so (a wait is never unbounded).
CHILD_TIMEOUT_S = 1800.0


def sample_texts(input_path: str | os.PathLike[str], limit: int) -> list[str]:
    """The first ``limit`` distinct texts of the input (bad lines skipped), read in domain pieces (a huge
    first domain is never held whole)."""
    from memtui.jobs.ids import IdIndex
    from memtui.jobs.pieces import read_pieces
    from memtui.jobs.source import InputSource

    source = InputSource.open(input_path)
    ids = IdIndex()
    texts: dict[str, None] = {}
    try:
        for piece in read_pieces(source.path, where=source.name, ids=ids):
            for response in piece.responses:
                texts.setdefault(response.text)
                if len(texts) >= limit:
                    return list(texts)
    finally:
        ids.close()
        source.close()
    return list(texts)


def _vm_hwm() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def child(backend: str, texts_path: Path, out: Path, model: str | None) -> dict[str, Any]:
    from memtui.embed.model import Embedder

    texts = json.loads(texts_path.read_text())
    embedder = Embedder(model, backend=backend)
    t0 = time.perf_counter()
    embedder.load()
    embedder.encode(["warm up the kernels"])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vectors = embedder.encode(texts)
    seconds = time.perf_counter() - t0
    np.save(out, vectors)
    return {
        "backend": backend,
        "texts": len(texts),
        "texts_per_s": len(texts) / seconds,
        "encode_s": seconds,
        "load_s": load_s,
        "peak_rss_bytes": _vm_hwm(),
        "torch_imported": "torch" in sys.modules,
    }


def cosines(vectors: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    cos = np.sum(vectors.astype(np.float64) * reference, axis=1)
    return {"cosine_mean": float(cos.mean()), "cosine_p1": float(np.percentile(cos, 1)), "cosine_min": float(cos.min())}


def knn_overlap(vectors: np.ndarray, reference: np.ndarray, k: int = 10) -> float:
    """Mean share of each text's k nearest neighbours (cosine) that both vector sets agree on."""
    k = min(k, len(vectors) - 1)
    if k < 1:
        return 1.0
    a, b = vectors @ vectors.T, reference @ reference.T
    np.fill_diagonal(a, -np.inf)
    np.fill_diagonal(b, -np.inf)
    na = np.argpartition(-a, k, axis=1)[:, :k]
    nb = np.argpartition(-b, k, axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def passes_gate(row: dict[str, Any]) -> bool:
    return row.get("cosine_mean", 1.0) >= GATE_MEAN and row.get("cosine_p1", 1.0) >= GATE_P1


def tune(
    input_path: str | os.PathLike[str], limit: int = DEFAULT_LIMIT, model: str | None = None, log: Any = None
) -> dict[str, Any]:
    if limit > MAX_LIMIT:
        from memtui.errors import UsageError

        raise UsageError(f"--limit {limit} is more than tune compares ({MAX_LIMIT}); a sample is enough")
    texts = sample_texts(input_path, limit)
    if not texts:
        from memtui.errors import InputError

        raise InputError(f"{input_path} holds no valid responses to tune on")
    work = Path(tempfile.mkdtemp(prefix="memtui-tune-"))
    try:
        (work / "texts.json").write_text(json.dumps(texts))
        rows: list[dict[str, Any]] = []
        reference = None
        for backend in BACKENDS:
            if not available(backend):
                extra = "openvino" if backend == "openvino" else "onnx"
                rows.append({"backend": backend, "skipped": f"pip install 'memtui[{extra}]'"})
                continue
            if log:
                log(f"tune: {backend} on {len(texts)} texts")
            out = work / f"{backend}.npy"
            cmd = [
                sys.executable,
                "-m",
                "memtui.jobs.tune",
                "--child",
                backend,
                "--texts",
                str(work / "texts.json"),
                "--out",
                str(out),
            ] + (["--model", model] if model else [])
            env = dict(os.environ)
            env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=CHILD_TIMEOUT_S
                )
            except subprocess.TimeoutExpired:  # run() has killed and reaped the child
                rows.append({"backend": backend, "failed": f"took over {CHILD_TIMEOUT_S:.0f}s"})
                continue
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            if proc.returncode != 0 or not lines:
                reason = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
                rows.append({"backend": backend, "failed": reason})
                continue
            row = json.loads(lines[-1])
            vectors = np.load(out)
            if backend == TORCH:
                reference = vectors.astype(np.float64)
            if reference is not None:
                row.update(cosines(vectors, reference), knn_overlap=knn_overlap(vectors, reference))
            rows.append(row)
    finally:
        for name in os.listdir(work):
            os.unlink(work / name)
        os.rmdir(work)
    ran = [r for r in rows if "texts_per_s" in r]
    good = [r for r in ran if passes_gate(r)]
    best = max(good, key=lambda r: r["texts_per_s"]) if good else None
    torch_row = next((r for r in ran if r["backend"] == TORCH), None)
    for r in ran:
        r["speedup_vs_torch"] = r["texts_per_s"] / torch_row["texts_per_s"] if torch_row else None
    return {
        "input": str(input_path),
        "texts": len(texts),
        "rows": rows,
        "recommendation": best["backend"] if best else TORCH,
        "gate": {"cosine_mean": GATE_MEAN, "cosine_p1": GATE_P1},
    }


def format_table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"memtui tune: {result['texts']} texts of {result['input']}",
        f"{'backend':<10} {'texts/s':>8} {'x torch':>8} {'peak RSS':>9} {'cos mean':>9} {'cos p1':>7} "
        f"{'knn@10':>7}  notes",
    ]
    for r in result["rows"]:
        if "texts_per_s" not in r:
            lines.append(
                f"{r['backend']:<10} {'-':>8} {'-':>8} {'-':>9} {'-':>9} {'-':>7} {'-':>7}  "
                f"{r.get('skipped') or 'failed: ' + r.get('failed', '')}"
            )
            continue
        note = (
            "exact (reference)"
            if r["backend"] == TORCH
            else ("passes the gate" if passes_gate(r) else "below the accuracy gate")
        )
        lines.append(
            f"{r['backend']:<10} {r['texts_per_s']:>8.1f} {r['speedup_vs_torch'] or 0:>7.2f}x "
            f"{r['peak_rss_bytes'] / (1 << 30):>7.2f}GB {r.get('cosine_mean', float('nan')):>9.4f} "
            f"{r.get('cosine_p1', float('nan')):>7.4f} {r.get('knn_overlap', float('nan')):>7.3f}  {note}"
        )
    lines.append(
        f"recommendation: --backend {result['recommendation']} (fastest within cosine mean >= "
        f"{GATE_MEAN}, 1st percentile >= {GATE_P1}; set MEMTUI_BACKEND or [embed] backend to keep it)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memtui.jobs.tune")
    ap.add_argument("--child", choices=BACKENDS, required=True)
    ap.add_argument("--texts", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    print(json.dumps(child(args.child, args.texts, args.out, args.model)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
