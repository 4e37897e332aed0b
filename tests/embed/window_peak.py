"""Child process for the window tests: encode one ~10M-character response, report VmHWM, compare with the uncut text.

Run as ``python tests/embed/window_peak.py KIND``; prints one JSON object. With
``--old-path`` it encodes through the pre-window route (token_lengths and
model.encode on the whole text) to measure what the window saves.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from memtui.embed.model import Embedder

MB = 1 << 20
SIZE = 10_000_000


def vm(name: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(name)


def text_of(kind: str) -> str:
    if kind == "english":
        unit = "The model answered with a careful, balanced view of risk; trust needs evidence. "
    elif kind == "cjk":
        unit = "東京都の天気は晴れです。Ünïcödé café ΟΔΟΣ naïve 🙂 "
    else:
        raise SystemExit(f"unknown kind {kind}")
    return (unit * (SIZE // len(unit) + 1))[:SIZE]


def main() -> None:
    kind = sys.argv[1]
    old_path = "--old-path" in sys.argv
    embedder = Embedder()
    model = embedder.load()
    embedder.encode(["warm up: the first forward pass allocates its own buffers"])
    text = text_of(kind)
    base = vm("VmHWM")
    start = time.perf_counter()
    if old_path:  # what Embedder did before windows: lengths, then encode, both on the whole text
        embedder._token_lengths([text])
        vector = model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]
        result = {"kind": kind, "old_path": True}
    else:
        window = embedder.window(text)
        vector = embedder.encode([text])[0]
        result = {"kind": kind, "old_path": False, "window_chars": len(window)}
    result.update(
        seconds=round(time.perf_counter() - start, 2),
        base_mb=round(base / MB),
        peak_mb=round(vm("VmHWM") / MB),
        chars=len(text),
    )
    result["growth_mb"] = result["peak_mb"] - result["base_mb"]
    if not old_path and "--compare" in sys.argv:
        full_ids = model.tokenize([text])["input_ids"].tolist()
        window_ids = model.tokenize([window])["input_ids"].tolist()
        full = model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]
        result["ids_equal"] = full_ids == window_ids
        result["ids"] = len(full_ids[0])
        result["max_abs_diff"] = float(np.max(np.abs(full - vector)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
