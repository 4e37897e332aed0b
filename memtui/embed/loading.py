"""Which runtime loads a backend's model: onnxruntime (onnx, onnx-int8) or OpenVINO (openvino).

Apart from memtui.embed.backends (the registry, the one-time export, onnxruntime's model) so that
OpenVINO's model, built on onnxruntime's tokenizer and pooling, imports that module and is not imported by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memtui.embed.backends import INT8_RUN_TOKENS, OnnxModel, ensure_exported, require_extra
from memtui.errors import ModelError


def load_onnx(folder: Path, backend: str, *, threads: int, log: Any = None) -> OnnxModel:
    require_extra(backend)
    if backend == "openvino":
        from memtui.embed import openvino_backend

        return openvino_backend.load(folder, threads=threads, log=log)
    path = ensure_exported(folder, backend, log=log)
    try:
        run_tokens = INT8_RUN_TOKENS if backend == "onnx-int8" else None
        return OnnxModel(folder, path, threads=threads, backend=backend, run_tokens=run_tokens)
    except ModelError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(f"cannot load {path} ({reason}); delete {path.parent} to export again") from None
