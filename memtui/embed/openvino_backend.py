"""The ``openvino`` backend: the onnx backend's fp32 model, run by OpenVINO's CPU plugin.

Exact vectors at int8 speed. OpenVINO reads the very ``model.onnx`` the ``onnx`` backend
runs (``memtui.embed.backends.ensure_exported``: the same file, through the same model
cache and its checks; nothing of its own is written) and runs it

* in **bf16** where the CPU computes bf16 natively (``/proc/cpuinfo`` flags ``avx512_bf16``
  or ``amx_bf16``): bf16 products, fp32 sums; cosine to torch fp32 stays above 0.9999;
* in **fp32** elsewhere (emulated bf16 would be slower than fp32; OpenVINO would pick bf16
  on its own on such a CPU, so the precision is always set explicitly).

The precision is part of the vectors' identity in the cache (``openvino/bf16`` and
``openvino/fp32`` never serve each other). ``MEMTUI_OPENVINO_PRECISION=fp32`` forces fp32
(bf16 is refused on a CPU without it).

Each sub-batch is split into one slice per thread (of at least ``RUN_TOKENS`` tokens), run side
by side, each on its own infer request of a compiled model with one stream per thread (as the
int8 backend's ``OnnxModel.parallel``): on 2 shared cores that took less CPU per text and less
wall time than one stream of 2 threads (BENCHMARKS.md, "The OpenVINO backend").

OpenVINO's compiled-model cache (``CACHE_DIR``) is not used: the compile takes under a second,
and a cache would be one more folder of blobs to trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import numpy as np

from memtui.embed.backends import OnnxModel, read_model_folder
from memtui.embed.openvino_precision import (  # re-exported: the backend's one place to ask
    BF16_FLAGS,
    HINTS,
    PRECISION_ENV,
    choose_precision,
    cpu_flags,
    precision,
    vector_tag,
    why,
)
from memtui.errors import ModelError

BACKEND = "openvino"
EXTRA_HINT = "pip install 'memtui[openvino]'"
#: The fewest tokens (rows x longest row) per infer request: a sub-batch is split into one slice per stream,
#: but never into slices smaller than this (384-1024-token calls cost about the same CPU per text here).
RUN_TOKENS = 384


class OpenVinoModel(OnnxModel):
    """``OnnxModel``'s tokenizer, slicing and pooling over an OpenVINO compiled model."""

    def __init__(self, folder: Path, onnx_path: Path, *, threads: int, chosen: str) -> None:
        import openvino as ov

        self.backend = BACKEND
        self.precision = chosen
        self.onnx_path = onnx_path
        self.run_tokens = RUN_TOKENS
        self.pooling, self.max_seq_length, self.tokenizer = read_model_folder(folder, BACKEND)
        self.parallel = max(1, threads)
        core = ov.Core()
        model = core.read_model(str(onnx_path))
        model.reshape({i.get_any_name(): ov.PartialShape([-1, -1]) for i in model.inputs})  # any batch, any length
        self._inputs = {i.get_any_name() for i in model.inputs}
        config = {
            "INFERENCE_PRECISION_HINT": HINTS[chosen],
            "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": self.parallel,  # one stream per thread: slices side by side, none waits on another
            "INFERENCE_NUM_THREADS": self.parallel,
        }
        self.compiled = core.compile_model(model, "CPU", config)
        out = self.compiled.outputs[0].get_partial_shape()
        self._dim = out[-1].get_length() if out.rank.is_static and out[-1].is_static else None
        self._requests: SimpleQueue[Any] = SimpleQueue()
        tiny = np.full((1, 2), self.tokenizer.pad_id, dtype=np.int64)
        for _ in range(self.parallel):
            request = self.compiled.create_infer_request()
            # One call on this thread first: the binding's first numpy conversion initialises a static under
            # a once-flag and the GIL, and two slice threads doing it at once deadlocked a run (seen here).
            request.infer({name: tiny for name in self._inputs})
            self._requests.put(request)
        self._slices = ThreadPoolExecutor(self.parallel, "memtui-openvino") if self.parallel > 1 else None

    def encode_ids(self, rows: Sequence[Sequence[int]], *, normalize_embeddings: bool = True) -> np.ndarray:
        """As ``OnnxModel.encode_ids``, in slices as large as the sub-batch split once per stream allows
        (never under ``RUN_TOKENS``): each stream gets work, and no call is smaller than it must be."""
        if rows:
            padded = len(rows) * max(len(r) for r in rows)
            self.run_tokens = max(RUN_TOKENS, -(-padded // self.parallel))
        return super().encode_ids(rows, normalize_embeddings=normalize_embeddings)

    def _run(self, ids: np.ndarray, mask: np.ndarray, normalize: bool) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        request = self._requests.get()  # one per slice thread: an infer request runs one call at a time
        try:
            hidden = request.infer(feed, share_inputs=True)[0]
        finally:
            self._requests.put(request)
        return self._pool(hidden, mask, normalize)


def load(folder: Path, *, threads: int, log: Any = None) -> OpenVinoModel:
    """The packaged fp32 ONNX export (made once, as for ``--backend onnx``) compiled by OpenVINO."""
    from memtui.embed.backends import ensure_exported

    flags = cpu_flags()
    chosen = choose_precision(flags)
    path = ensure_exported(folder, "onnx", log=log)  # the onnx backend's file, through the model cache's checks
    try:
        model = OpenVinoModel(folder, path, threads=threads, chosen=chosen)
    except ModelError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(f"OpenVINO cannot load {path} ({reason}); use --backend onnx or torch") from None
    if log is not None:
        log(f"openvino: {chosen} inference ({why(chosen, flags)}), {model.parallel} stream(s) of 1 thread")
    return model


__all__ = [
    "BF16_FLAGS",
    "HINTS",
    "PRECISION_ENV",
    "OpenVinoModel",
    "choose_precision",
    "cpu_flags",
    "load",
    "precision",
    "vector_tag",
    "why",
]
