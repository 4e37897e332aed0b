#!/usr/bin/env python3
"""The plain OpenVINO int8 script (issue #22 goal 2's yardstick): NNCF static post-training quantization
of memtui's fp32 ``model.onnx``, then the int8 gate on texts the project did not tune for.

    python bench/openvino_int8.py [--texts 400] [--seed 5150] [--calibration 300] [--preset mixed]

Needs the ``bench`` extra (``nncf``) besides ``openvino``. Calibration: the first ``--calibration``
distinct responses of the bundled sample, one text per call (NNCF's transformer model type, which
keeps softmax, layer norm and GELU in fp32). Evaluation: ``--texts`` perturbed responses of a fresh
``generate.py`` seed (``bench/openvino.py``'s ``make_texts``), encoded in calls of 4 texts by the fp32
model (the reference: OpenVINO fp32 equals torch fp32 to a cosine of 1e-6,
``tests/embed/test_openvino_backend.py``) and by the int8 one on one infer request of 2 threads.
Prints cosine mean / 1st percentile, top-10 neighbour overlap, CPU and wall seconds of each encode,
the quantization's wall time and the load average, and the gate's verdict
(cosine mean >= 0.99, p1 >= 0.98, top-10 overlap >= 0.95).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "sample_data" / "responses.jsonl.gz"
GATE = {"cos_mean": 0.99, "cos_p1": 0.98, "knn10": 0.95}


def _peer_module() -> Any:
    """bench/openvino.py by path (its name would shadow the openvino package on sys.path)."""
    spec = importlib.util.spec_from_file_location("bench_openvino_peers", Path(__file__).with_name("openvino.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calibration_texts(n: int) -> list[str]:
    texts: dict[str, None] = {}
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as fh:
        for line in fh:
            texts.setdefault(json.loads(line)["response"], None)
            if len(texts) == n:
                break
    return list(texts)


class Feeds:
    """Padded model inputs of texts, as memtui's ONNX tokenizer makes them (window 256)."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(256)
        self.names = names

    def __call__(self, texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        enc = self.tok.encode_batch(texts)
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {k: v for k, v in feed.items() if k in self.names}, mask


def read(core: Any, path: Path) -> Any:
    import openvino as ov

    model = core.read_model(str(path))
    model.reshape({i.get_any_name(): ov.PartialShape([-1, -1]) for i in model.inputs})
    return model


def encode(core: Any, model: Any, feeds: Feeds, texts: list[str]) -> tuple[np.ndarray, float, float]:
    compiled = core.compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2}
    )
    request = compiled.create_infer_request()
    out = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, len(texts), 4):
        feed, mask = feeds(texts[start : start + 4])
        hidden = request.infer(feed)[0]
        v = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return np.concatenate(out), time.process_time() - cpu0, time.perf_counter() - wall0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=400)
    ap.add_argument("--seed", type=int, default=5150)
    ap.add_argument("--calibration", type=int, default=300)
    ap.add_argument("--preset", choices=["mixed", "performance"], default="mixed")
    ap.add_argument("--onnx", default=None, help="memtui's fp32 model.onnx (default: export it once into a temp cache)")
    args = ap.parse_args(argv)
    import nncf
    import openvino as ov

    from memtui.embed.model import _packaged_model_path

    folder = _packaged_model_path()
    work = Path(tempfile.mkdtemp(prefix="memtui-bench-ov-int8-"))
    onnx = Path(args.onnx) if args.onnx else None
    if onnx is None:
        os.environ.setdefault("MEMTUI_MODEL_CACHE", str(work / "models"))
        from memtui.embed.backends import ensure_exported

        onnx = ensure_exported(folder, "onnx")
    core = ov.Core()
    fp32 = read(core, onnx)
    feeds = Feeds(folder, [i.get_any_name() for i in fp32.inputs])
    load0 = os.getloadavg()[0]
    items = [feeds([t])[0] for t in calibration_texts(args.calibration)]
    preset = nncf.QuantizationPreset.MIXED if args.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE
    t0 = time.perf_counter()
    int8 = nncf.quantize(
        read(core, onnx),
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        preset=preset,
        subset_size=len(items),
    )
    quantize_s = time.perf_counter() - t0
    _, texts = _peer_module().make_texts(work, args.texts, args.seed)
    ref, cpu_ref, wall_ref = encode(core, fp32, feeds, texts)
    got, cpu_q, wall_q = encode(core, int8, feeds, texts)
    acc = _peer_module().accuracy(ref, got)
    passed = all(acc[k] >= v for k, v in GATE.items())
    result = {
        "texts": len(texts),
        "seed": args.seed,
        "calibration": len(items),
        "preset": args.preset,
        "quantize_wall_s": quantize_s,
        "fp32": {"cpu_s": cpu_ref, "wall_s": wall_ref},
        "int8": {"cpu_s": cpu_q, "wall_s": wall_q, **acc},
        "gate": GATE,
        "passes": passed,
        "load": [load0, os.getloadavg()[0]],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
