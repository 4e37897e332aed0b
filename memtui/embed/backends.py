"""Embedding backends: ``torch`` (exact fp32, the default), ``onnx`` (fp32) and ``onnx-int8``.

The ONNX backends run on onnxruntime + the ``tokenizers`` library + numpy and
never import torch: less memory, a faster start. Their model files are made
once per model and recipe by ``memtui.embed.onnx_export`` in a child process
(the only place torch is imported for them) and kept in memtui's model cache::

    $MEMTUI_MODEL_CACHE or ~/.cache/memtui/models/<hash of the model's files and the recipe>/
        model.onnx                      fp32, fused (the onnx backend)
        model_int8_<isa>.onnx           int8 weights, per channel (onnx-int8)
        export.json                     recipe, source folder, timings

A backend's name is part of a vector's identity in the cache (see
``memtui.embed.store.key_for``): vectors of two backends never mix; an int8
vector's tag also names its recipe and the ISA it was exported for.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from memtui.errors import ConfigError, ModelError, UsageError

TORCH = "torch"
BACKENDS = (TORCH, "onnx", "onnx-int8")
DEFAULT_BACKEND = TORCH
EXTRA_HINT = "pip install 'memtui[onnx]' (onnxruntime and onnx)"
#: What each backend needs importable: checked without importing anything.
_NEEDS = {"onnx": ("onnxruntime", "tokenizers"), "onnx-int8": ("onnxruntime", "tokenizers")}
#: What the one-time export needs besides (torch and transformers come with sentence-transformers).
_EXPORT_NEEDS = ("onnx", "onnxruntime", "torch", "transformers")
EXPORT_TIMEOUT_S = 1800
#: Tokens (rows x longest row) per onnxruntime call on onnx-int8. The Embedder's sub-batches are sized
#: for torch; int8 runs them in slices this small (one 256-token text a call), whose activations stay in
#: the core's cache: through memtui 1.9-2.0x torch's speed instead of 1.4x unsliced (BENCHMARKS.md, recipe 3).
INT8_RUN_TOKENS = 384
_SOURCE_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "model.safetensors",
    "pytorch_model.bin",
    "1_Pooling/config.json",
)


def check_backend(name: str, where: str = "--backend") -> str:
    """The backend's name, or a UsageError naming the choices (exit 2)."""
    if name not in BACKENDS:
        raise UsageError(f"{where} {name!r} is not a backend; choose one of {', '.join(BACKENDS)}")
    return name


def missing_modules(backend: str, *, export: bool = False) -> list[str]:
    needs = list(_NEEDS.get(backend, ()))
    if export and backend != TORCH:
        needs += [m for m in _EXPORT_NEEDS if m not in needs]
    return [m for m in needs if not _findable(m)]


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(backend: str) -> None:
    """Fail with exit 2, naming the extra to install, when a backend's modules are missing."""
    missing = missing_modules(backend)
    if missing:
        raise UsageError(f"--backend {backend} needs {', '.join(missing)}, which is not installed; {EXTRA_HINT}")


def available(backend: str) -> bool:
    return not missing_modules(backend)


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
    if os.environ.get("MEMTUI_MODEL_CACHE"):
        return Path(os.environ["MEMTUI_MODEL_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "memtui" / "models"


def model_hash(folder: Path) -> str:
    """Names, sizes and mtimes of the files the export reads, and the recipe version: cheap and enough."""
    from memtui.embed.onnx_export import RECIPE_VERSION

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
    ISA its model was exported for (AVX2's 7-bit weights give other vectors than VNNI's)."""
    if backend != "onnx-int8":
        return backend
    from memtui.embed.onnx_export import RECIPE_VERSION

    return f"{backend}/r{RECIPE_VERSION}/{isa or detect_isa()}"


def artifact_dir(folder: Path) -> Path:
    return model_cache_root() / model_hash(folder)


def artifact_name(backend: str, isa: str | None = None) -> str:
    return "model.onnx" if backend == "onnx" else f"model_int8_{isa or detect_isa()}.onnx"


def ensure_exported(folder: Path, backend: str, *, log: Any = None) -> Path:
    """The ONNX file of ``backend`` for ``folder``, exported first (in a child process) if missing."""
    out = artifact_dir(folder)
    isa = detect_isa()
    path = out / artifact_name(backend, isa)
    if path.is_file():
        return path
    missing = missing_modules(backend, export=True)
    if missing:
        raise UsageError(
            f"--backend {backend} needs {', '.join(missing)} for its one-time export, which is not "
            f"installed; {EXTRA_HINT}"
        )
    if out.exists():  # an export of another ISA or an older layout: redo it beside, then swap
        stale = out.with_name(out.name + f".old-{os.getpid()}")
        os.rename(out, stale)
        import shutil

        shutil.rmtree(stale, ignore_errors=True)
    if log is not None:
        log(f"exporting {folder} to ONNX ({backend}, {isa}) into {out}: once per model")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "memtui.embed.onnx_export", "--model", str(folder), "--out", str(out), "--isa", isa],
            capture_output=True,
            text=True,
            env=env,
            timeout=EXPORT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ModelError(f"the ONNX export of {folder} took over {EXPORT_TIMEOUT_S}s; use --backend torch") from None
    if proc.returncode != 0 or not path.is_file():
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise ModelError(f"the ONNX export of {folder} failed ({tail}); use --backend torch")
    return path


# -- the runtime -----------------------------------------------------------------------------------


class _Encoded:
    """What ``Embedder.window`` reads of a transformers tokenizer's single-text answer."""

    def __init__(self, encoding: Any) -> None:
        self._encoding = encoding

    def word_ids(self) -> list[int | None]:
        return list(self._encoding.word_ids)


class OnnxTokenizer:
    """The slice of a transformers fast tokenizer the Embedder calls, over a ``tokenizers.Tokenizer``."""

    def __init__(self, path: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.max_length = max_length
        self._lock = threading.Lock()  # truncation is the Tokenizer's state: set and use it in one go
        pad = self._tok.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad

    def __call__(
        self,
        text: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
        **_ignored: Any,
    ) -> Any:
        with self._lock:
            if truncation:
                self._tok.enable_truncation(max_length or self.max_length)
            else:
                self._tok.no_truncation()
            if isinstance(text, str):
                return _Encoded(self._tok.encode(text, add_special_tokens=add_special_tokens))
            encodings = self._tok.encode_batch(list(text), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encodings]}

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids and attention mask, truncated to the window."""
        with self._lock:
            self._tok.enable_truncation(self.max_length)
            encodings = self._tok.encode_batch(list(texts), add_special_tokens=True)
        return self.pad([e.ids for e in encodings])

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Ids padded to the longest row (not to the window) and their attention mask."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, r in enumerate(rows):
            ids[row, : len(r)] = r
            mask[row, : len(r)] = 1
        return ids, mask


def _read_json(path: Path) -> Any:
    """The file's JSON, or {} when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_slices(lengths: Sequence[int], tokens: int | None) -> list[slice]:
    """Consecutive slices of rows whose count x longest row stays within ``tokens`` (one row at least);
    the whole batch for None."""
    if tokens is None:
        return [slice(0, len(lengths))] if lengths else []
    out: list[slice] = []
    start, longest = 0, 0
    for i, n in enumerate(lengths):
        wider = max(longest, n)
        if i > start and (i - start + 1) * wider > tokens:
            out.append(slice(start, i))
            start, wider = i, n
        longest = wider
    if start < len(lengths):
        out.append(slice(start, len(lengths)))
    return out


class OnnxModel:
    """A sentence-transformers model (Transformer + Pooling [+ Normalize]) on onnxruntime.

    Quacks like the parts of ``SentenceTransformer`` the Embedder uses:
    ``tokenizer``, ``max_seq_length``, ``get_embedding_dimension()`` and ``encode``.
    """

    def __init__(
        self, folder: Path, onnx_path: Path, *, threads: int, backend: str, run_tokens: int | None = None
    ) -> None:
        import onnxruntime as ort

        self.backend = backend
        self.onnx_path = onnx_path
        self.run_tokens = run_tokens
        modules: list[dict[str, Any]] = _read_json(folder / "modules.json") or []  # a list in a model folder
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        if modules and any(k not in {"Transformer", "Pooling", "Normalize"} for k in kinds):
            raise ModelError(
                f"--backend {backend} runs Transformer + Pooling (+ Normalize) models; {folder} has "
                f"{', '.join(kinds)}: use --backend torch"
            )
        pooling_dir = next((m.get("path", "") for m in modules if m.get("type", "").endswith("Pooling")), "1_Pooling")
        pooling = _read_json(folder / pooling_dir / "config.json")
        if pooling.get("pooling_mode_cls_token"):
            self.pooling = "cls"
        elif pooling.get("pooling_mode_max_tokens"):
            self.pooling = "max"
        else:
            self.pooling = "mean"
        self.max_seq_length = int(
            _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
            or _read_json(folder / "config.json").get("max_position_embeddings")
            or 512
        )
        tokenizer_path = folder / "tokenizer.json"
        if not tokenizer_path.is_file():
            raise ModelError(
                f"--backend {backend} needs a fast tokenizer (tokenizer.json) in {folder}; use --backend torch"
            )
        self.tokenizer = OnnxTokenizer(tokenizer_path, self.max_seq_length)
        # Sliced calls are small: run ``threads`` of them at once, one thread each, rather than one at a
        # time on ``threads`` threads that meet at every op (1.2-1.4x on 2 shared cores, BENCHMARKS.md;
        # the same calls, so the same vectors). A session may be run from several threads at once.
        self.parallel = threads if run_tokens is not None and threads > 1 else 1
        self._slices = ThreadPoolExecutor(self.parallel, "memtui-onnx") if self.parallel > 1 else None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self._slices is not None else threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False  # activations go back to malloc (the runner trims it) after each call
        # Threads that spin while waiting starve each other on shared cores (as OMP_WAIT_POLICY=PASSIVE for torch).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._dim = (
            int(self.session.get_outputs()[0].shape[-1])
            if isinstance(self.session.get_outputs()[0].shape[-1], int)
            else None
        )

    def get_embedding_dimension(self) -> int | None:
        return self._dim

    def close(self) -> None:
        """Let the slice threads go (the Embedder's unload): nothing may wait on them afterwards."""
        if self._slices is not None:
            self._slices.shutdown(wait=False)

    def encode(
        self, sentences: Sequence[str], *, batch_size: int = 32, normalize_embeddings: bool = True, **_ignored: Any
    ) -> np.ndarray:
        out: list[np.ndarray] = []
        for start in range(0, len(sentences), batch_size):
            ids, mask = self.tokenizer.batch(sentences[start : start + batch_size])
            out.append(self._run(ids, mask, normalize_embeddings))
        return np.concatenate(out) if out else np.empty((0, self._dim or 0), dtype=np.float32)

    def encode_ids(self, rows: Sequence[Sequence[int]], *, normalize_embeddings: bool = True) -> np.ndarray:
        """Vectors of already tokenized texts (special tokens in, truncated): the Embedder's sub-batches, whose
        ids it computed once to plan them, so nothing is tokenized twice; run in ``run_tokens`` slices."""
        slices = run_slices([len(r) for r in rows], self.run_tokens)

        def run(part: slice) -> np.ndarray:
            return self._run(*self.tokenizer.pad(rows[part]), normalize_embeddings)

        pool = self._slices
        parts = list(pool.map(run, slices)) if pool is not None and len(slices) > 1 else [run(p) for p in slices]
        if not parts:
            return np.empty((0, self._dim or 0), dtype=np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _run(self, ids: np.ndarray, mask: np.ndarray, normalize: bool) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
        return self._pool(hidden, mask, normalize)

    def _pool(self, hidden: np.ndarray, mask: np.ndarray, normalize: bool) -> np.ndarray:
        if self.pooling == "cls":
            vectors = np.ascontiguousarray(hidden[:, 0], dtype=np.float32)
        elif self.pooling == "max":
            vectors = np.where(mask[..., None] > 0, hidden, -1e9).max(axis=1).astype(np.float32, copy=False)
        else:  # masked mean as one batched product: (b, 1, len) @ (b, len, dim), no (b, len, dim) temporary
            weights = mask.astype(np.float32)[:, None, :]
            vectors = np.matmul(weights, hidden.astype(np.float32, copy=False))[:, 0, :]
            vectors /= np.maximum(weights.sum(axis=2), 1e-9)
        if normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            norms[norms == 0.0] = 1.0
            vectors /= norms
        return vectors


def is_oom(exc: BaseException) -> bool:
    """onnxruntime's allocation failures (it raises its own exception types)."""
    text = str(exc).lower()
    return "bad_alloc" in text or "bad allocation" in text or "failed to allocate" in text or "out of memory" in text


def load_onnx(folder: Path, backend: str, *, threads: int, log: Any = None) -> OnnxModel:
    require_extra(backend)
    path = ensure_exported(folder, backend, log=log)
    try:
        run_tokens = INT8_RUN_TOKENS if backend == "onnx-int8" else None
        return OnnxModel(folder, path, threads=threads, backend=backend, run_tokens=run_tokens)
    except ModelError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(f"cannot load {path} ({reason}); delete {path.parent} to export again") from None


def resolve_backend(flag: str | None, config_file: Path | None, env: Mapping[str, str] | None = None) -> str:
    """``--backend`` > ``$MEMTUI_BACKEND`` > the config file's ``[embed] backend`` > torch."""
    env = os.environ if env is None else env
    if flag:
        return check_backend(flag)
    if env.get("MEMTUI_BACKEND"):
        return check_backend(env["MEMTUI_BACKEND"], "MEMTUI_BACKEND")
    if config_file is not None:
        from memtui.memory.settings_file import read_toml_file

        try:
            table = read_toml_file(config_file).get("embed", {})  # a regular file, bounded, never a FIFO
        except ConfigError:
            table = {}  # the memory settings' reader reports a broken or missing file, naming it
        if isinstance(table, dict) and table.get("backend"):
            return check_backend(str(table["backend"]), f"config file {config_file}: [embed] backend")
    return DEFAULT_BACKEND
