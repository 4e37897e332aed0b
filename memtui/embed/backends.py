"""Embedding backends: ``torch`` (exact fp32, the default), ``onnx`` (fp32) and ``onnx-int8``.

The ONNX backends run on onnxruntime + the ``tokenizers`` library + numpy and
never import torch: less memory, a faster start. Their model files are made
once per model and recipe by ``memtui.embed.onnx_export`` in a child process
(the only place torch is imported for them) and kept in memtui's model cache::

    $MEMTUI_MODEL_CACHE or ~/.cache/memtui/models/<hash of the model's files and the recipe>/
        model.onnx                      fp32, fused (the onnx backend)
        model_int8_<isa>.onnx           int8 weights, per channel (onnx-int8)
        export.json                     the manifest: size and sha256 of each file; recipe, source, timings

Private, ours, no links, and checked against the manifest before each load (``memtui.embed.model_cache``).

A backend's name is part of a vector's identity in the cache (see
``memtui.embed.store.key_for``): vectors of two backends never mix; an int8
vector's tag also names its recipe and the ISA it was exported for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from memtui.embed.artifacts import (
    artifact_name,
    detect_isa,
    model_hash,
)
from memtui.errors import ConfigError, ModelError, UsageError

TORCH = "torch"
BACKENDS = (TORCH, "onnx", "onnx-int8", "openvino")
DEFAULT_BACKEND = TORCH
EXTRA_HINT = "pip install 'memtui[onnx]' (onnxruntime and onnx)"
#: What each backend needs importable: checked without importing anything.
_NEEDS = {
    "onnx": ("onnxruntime", "tokenizers"),
    "onnx-int8": ("onnxruntime", "tokenizers"),
    "openvino": ("openvino", "tokenizers"),  # memtui.embed.openvino_backend
}
#: What the one-time export needs besides (torch and transformers come with sentence-transformers).
_EXPORT_NEEDS = ("onnx", "onnxruntime", "torch", "transformers")
EXPORT_TIMEOUT_S = 1800
#: Tokens (rows x longest row) per onnxruntime call on onnx-int8. The Embedder's sub-batches are sized
#: for torch; int8 runs them in slices this small (one 256-token text a call), whose activations stay in
#: the core's cache: through memtui 1.9-2.0x torch's speed instead of 1.4x unsliced (BENCHMARKS.md, recipe 3).
INT8_RUN_TOKENS = 384


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
        hint = "pip install 'memtui[openvino]'" if backend == "openvino" else EXTRA_HINT
        raise UsageError(f"--backend {backend} needs {', '.join(missing)}, which is not installed; {hint}")


def available(backend: str) -> bool:
    return not missing_modules(backend)


def check_model_cache(folder: Path) -> None:
    """The model cache's root and this model's export folder are ours, no links (UnsafeFile otherwise).

    Cheap (no hashing): run before any work, so a refusal is one line before a face starts; the load
    verifies the file itself (``ensure_exported``).
    """
    from memtui.embed import model_cache

    out = model_cache.ensure_root() / model_hash(folder)
    if os.path.lexists(out):
        model_cache.check_folder(out)
        model_cache.read_manifest(out)


def ensure_exported(folder: Path, backend: str, *, log: Any = None) -> Path:
    """The ONNX file of ``backend`` for ``folder``, checked against its export's manifest; exported first
    (in a child process, if the memory limit can hold it) when missing, half-written or not as written.

    Another user's or a linked model cache is refused (``memtui.embed.model_cache``), never loaded.
    """
    from memtui.embed import model_cache

    root = model_cache.ensure_root()
    out = root / model_hash(folder)
    isa = detect_isa()
    name = artifact_name(backend, isa)
    verdict = model_cache.verify(out, name)
    if verdict.path is not None:
        return verdict.path
    missing = missing_modules(backend, export=True)
    if missing:
        raise UsageError(
            f"--backend {backend} needs {', '.join(missing)} for its one-time export, which is not "
            f"installed; {EXTRA_HINT}"
        )
    from memtui.embed.footprint import require_export_room
    from memtui.memory.probe import discover_limit

    require_export_room(discover_limit(), folder)  # refused before it starts, never OOM-killed half-way
    with model_cache.export_lock(root, out.name):
        verdict = model_cache.verify(out, name)  # another process may have made it while we waited
        if verdict.path is not None:
            return verdict.path
        proc = _export_child(folder, out, backend, isa, verdict.reason, log)
    verdict = model_cache.verify(out, name)
    if proc.returncode != 0 or verdict.path is None:
        lines = proc.stderr.strip().splitlines()
        tail = next((line for line in reversed(lines) if line.startswith("memtui: error:")), None)
        tail = tail.removeprefix("memtui: error: ") if tail else (lines or [verdict.reason or "no output"])[-1]
        if proc.returncode < 0:
            tail = f"killed by signal {-proc.returncode}, out of memory?"
        raise ModelError(f"the ONNX export of {folder} failed ({tail[:200]}); use --backend torch")
    return verdict.path


def _export_child(folder: Path, out: Path, backend: str, isa: str, why: str, log: Any) -> Any:
    """Export ``folder`` into ``out`` (a fresh folder: what is there is retired first) in a child process."""
    from memtui.embed import model_cache

    model_cache.sweep_stale_temps(out.parent, out.name)
    if os.path.lexists(out):  # half-written, another ISA, an older layout or not as written: a fresh folder
        if log is not None:
            log(f"model cache: {why}; exporting again into a fresh folder")
        model_cache.retire(out)
    if log is not None:
        log(f"exporting {folder} to ONNX ({backend}, {isa}) into {out}: once per model")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    src = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    child = subprocess.Popen(
        [sys.executable, "-m", "memtui.embed.onnx_export", "--model", str(folder), "--out", str(out), "--isa", isa],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its steps are its children: a timeout or an interrupt ends them all
    )
    try:
        stdout, stderr = child.communicate(timeout=EXPORT_TIMEOUT_S)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            took = f"the ONNX export of {folder} took over {EXPORT_TIMEOUT_S}s"
            raise ModelError(f"{took}; use --backend torch") from None
        raise
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


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


def read_model_folder(folder: Path, backend: str) -> tuple[str, int, OnnxTokenizer]:
    """A Transformer + Pooling (+ Normalize) folder's pooling, window and tokenizer, read once for every
    runtime of its ONNX file (onnxruntime's ``OnnxModel``, OpenVINO's subclass); ``backend`` names the flag
    in the errors."""
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
        mode = "cls"
    elif pooling.get("pooling_mode_max_tokens"):
        mode = "max"
    else:
        mode = "mean"
    max_seq_length = int(
        _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
        or _read_json(folder / "config.json").get("max_position_embeddings")
        or 512
    )
    tokenizer_path = folder / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise ModelError(
            f"--backend {backend} needs a fast tokenizer (tokenizer.json) in {folder}; use --backend torch"
        )
    return mode, max_seq_length, OnnxTokenizer(tokenizer_path, max_seq_length)


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
        self.pooling, self.max_seq_length, self.tokenizer = read_model_folder(folder, backend)
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
