"""Where an ONNX export lives in memtui's model cache and what it is called: names only, no loading.

The folder is named by a hash of the model's files and the export recipe (``model_hash``), the
file by the backend and the instruction set (``artifact_name``), and an int8 vector's tag carries
the recipe and the ISA (``vector_backend``). On its own, importing neither numpy nor onnxruntime,
so the footprint check can ask whether an export is made without importing the backends (which
import the footprint check).
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

from memtui.embed.recipe import RECIPE_VERSION

_SOURCE_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "model.safetensors",
    "pytorch_model.bin",
    "1_Pooling/config.json",
)


# -- the instruction set --------------------------------------------------------------------------


def detect_isa() -> str:
    """avx512_vnni, avx2 (any other x86-64) or arm64: picks the quantization recipe."""
    machine = platform.machine().lower()
    if machine in {"aarch64", "arm64"}:
        return "arm64"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "avx512_vnni" if {"avx512_vnni", "avx512f"} <= flags else "avx2"
    except OSError:
        pass
    return "avx2"


# -- the model cache -------------------------------------------------------------------------------


def model_cache_root() -> Path:
    """$MEMTUI_MODEL_CACHE, else $XDG_CACHE_HOME/memtui/models (~/.cache/memtui/models)."""
    from memtui.embed.model_cache import cache_root

    return cache_root()


def model_hash(folder: Path) -> str:
    """Names, sizes and mtimes of the files the export reads, and the recipe version: cheap and enough."""
    h = hashlib.sha256(f"recipe {RECIPE_VERSION}\0{folder.resolve()}\0".encode())
    for name in _SOURCE_FILES:
        try:
            st = (folder / name).stat()
        except OSError:
            continue
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:16]


def vector_backend(backend: str, isa: str | None = None) -> str:
    """The backend as part of a vector's identity in the cache (``store.key_for``): onnx-int8 carries its
    recipe (so vectors of an older int8 export are never served to a newer one) and, from recipe 3 on, the
    ISA its model was exported for (AVX2's 7-bit weights give other vectors than VNNI's); openvino its
    precision (``openvino/bf16``, ``openvino/fp32``)."""
    if backend == "openvino":
        from memtui.embed.openvino_precision import vector_tag

        return vector_tag()
    if backend != "onnx-int8":
        return backend
    return f"{backend}/r{RECIPE_VERSION}/{isa or detect_isa()}"


def artifact_dir(folder: Path) -> Path:
    return model_cache_root() / model_hash(folder)


def artifact_name(backend: str, isa: str | None = None) -> str:
    """The export file ``backend`` loads: openvino runs the onnx backend's fp32 ``model.onnx``."""
    return "model.onnx" if backend in {"onnx", "openvino"} else f"model_int8_{isa or detect_isa()}.onnx"
