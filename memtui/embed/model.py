"""The executor: texts in, unit-norm float32 vectors out.

torch and sentence-transformers are imported only when the model is first
loaded, so a rerun over a complete cache (and ``model_id``, which keys the
cache) never pays their ~300 MB. Encoding is cut into token-budgeted
sub-batches: activation memory follows batch x sequence length, and each
sub-batch is short enough for the runner to pause or stop between them. The
budget adapts to the speed it measures during the run (``memtui.embed.budget``)
unless one is given.

``backend`` picks what runs the model (``memtui.embed.backends``): ``torch``
(sentence-transformers, exact fp32, the default) or ``onnx`` / ``onnx-int8``
(onnxruntime, which never imports torch). Sub-batching, windows, unload and
the runner's checkpoints are the same on every backend.

A text is cut to its window before anything tokenizes it whole: the model only
ever sees its first ``max_seq_length`` tokens, yet a fast tokenizer builds
every token of the whole text before truncating (measured: 1.4 GB for a
10-million-character English text, 5.4 GB for a CJK one). ``Embedder.window``
keeps the shortest prefix that provably yields the same first tokens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memtui.embed.budget import AdaptiveBudget
from memtui.embed.default_model import DEFAULT_ALIASES as _DEFAULT_ALIASES
from memtui.embed.default_model import DEFAULT_MODEL_ID
from memtui.embed.default_model import packaged_model_path as _packaged_model_path
from memtui.errors import ModelError

DEFAULT_TOKEN_BUDGET = 2048  # where the adaptive budget starts: fastest on 2 quiet CPU cores (BENCHMARKS.md)
DEFAULT_MAX_BATCH = 128
# Attention scores grow with batch x len^2; bounding that by the token budget
# at this reference length only bites for models with longer windows.
ATTENTION_REF_LEN = 256
_FIX = "pass --model with a sentence-transformers folder"
# Window cuts: the first prefix tried is this many characters per window token
# (English runs ~4.5 characters a token, so 8 covers a full window in one try),
# doubled until enough tokens are settled. Texts this short are never cut.
WINDOW_CHARS_PER_TOKEN = 8
# Settled tokens wanted beyond the window: insurance for tokenizers whose
# normalizer might look a few characters past a word (BERT's does not).
WINDOW_MARGIN = 16


def _looks_like_path(name: str) -> bool:
    """Hub names are 'name' or 'org/name'; anything else was meant as a folder."""
    return name.startswith((".", "~", os.sep)) or name.count("/") > 1


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[0].rstrip(".") if text else type(exc).__name__
    return reason if len(reason) <= 160 else reason[:157] + "..."


def _quiet_loading() -> None:
    """Silence the 'Loading weights' bar and load-time chatter on the operator's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    for name in ("sentence_transformers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        "can't allocate memory" in text
        or "not enough memory" in text
        or "out of memory" in text
        or "bad_alloc" in text
        or "bad allocation" in text
        or "failed to allocate" in text
    )


def _settled_tokens(tokenizer: Any, prefix: str) -> int | None:
    """Tokens of ``prefix`` before its last word's (None when the tokenizer cannot tell words apart)."""
    encoding = tokenizer(
        prefix,
        add_special_tokens=False,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    try:
        words = encoding.word_ids()
    except (ValueError, AttributeError):
        return None
    if not words or words[-1] is None:
        return 0 if not words else None
    last = words[-1]
    settled = 0
    for word in words:
        if word is None or word >= last:
            break
        settled += 1
    return settled


class Embedder:
    """A lazily loaded sentence-transformers model, safe to load from any thread."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
        token_budget: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        backend: str = "torch",
    ) -> None:
        from memtui.embed.backends import check_backend

        self._name = None if model is None else str(model)
        self.backend = check_backend(backend)
        self.device = device
        self.threads = threads or len(os.sched_getaffinity(0))
        # None: adapt to the measured speed (starting at the default); a number: that budget, fixed.
        self.token_budget = token_budget or DEFAULT_TOKEN_BUDGET
        self.budget = AdaptiveBudget(self.token_budget) if token_budget is None else None
        self.max_batch = max_batch
        self.load_seconds: float | None = None
        self._lock = threading.Lock()
        self._model: Any = None

    # -- identity ----------------------------------------------------------

    @property
    def model_id(self) -> str:
        """Stable id for cache keys, computed without loading anything."""
        if self._name is None or self._name in _DEFAULT_ALIASES:
            return DEFAULT_MODEL_ID
        path = Path(self._name).expanduser()
        if not path.exists():
            return self._name
        resolved = path.resolve()
        try:
            if resolved == _packaged_model_path():
                return DEFAULT_MODEL_ID
        except ModelError:
            pass
        return str(resolved)

    def _source(self) -> str:
        """What SentenceTransformer should open: a local folder, or a locally cached name."""
        if self._name is None or self._name in _DEFAULT_ALIASES:
            return str(_packaged_model_path())
        path = Path(self._name).expanduser()
        if path.exists():
            return str(path.resolve())
        if _looks_like_path(self._name):
            raise ModelError(f"model '{self._name}' did not load: no such folder; {_FIX}")
        return self._name

    def check(self) -> None:
        """Fail fast, without loading, on a model that cannot be found (before any cache is touched)."""
        if self.backend != "torch":
            from memtui.embed.backends import require_extra

            require_extra(self.backend)  # exit 2, naming the extra, before any work
        source = Path(self._source())
        if source.exists() and not any((source / name).exists() for name in ("modules.json", "config.json")):
            raise ModelError(f"model '{self._name}' did not load: {source} has no modules.json or config.json; {_FIX}")
        if self.backend != "torch" and source.is_dir():
            from memtui.embed.backends import check_model_cache

            check_model_cache(source)  # another user's or a linked model cache: exit 2 before any work

    @property
    def vector_backend(self) -> str:
        """The backend as part of each vector's key in the cache: onnx-int8 carries its export recipe."""
        from memtui.embed.artifacts import vector_backend

        return vector_backend(self.backend)

    # -- lifecycle ---------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> Any:
        """Load once (idempotent, thread-safe); return the SentenceTransformer."""
        with self._lock:
            if self._model is not None:
                return self._model
            source = self._source()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            # OpenMP threads that spin while waiting starve each other on a shared
            # box: measured 5-10x slower encodes when the 2 cores were contended.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            start = time.perf_counter()  # imports included: they are most of the wait
            if self.backend != "torch":
                self._model = self._load_onnx(source)
                self.load_seconds = time.perf_counter() - start
                return self._model
            try:
                import torch
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ModelError(
                    f"cannot import the model stack ({_short(exc)}); pip install sentence-transformers"
                ) from None
            torch.set_num_threads(self.threads)
            _quiet_loading()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = SentenceTransformer(source, device=self.device, local_files_only=True)
            except Exception as exc:
                reason = _short(exc)
                if not Path(source).exists() and "cached files" in reason:
                    reason = "not a local folder, nor in the local Hugging Face cache (memtui never downloads)"
                raise ModelError(f"model '{self._name or DEFAULT_MODEL_ID}' did not load: {reason}; {_FIX}") from None
            model.eval()
            self.load_seconds = time.perf_counter() - start
            self._model = model
            return model

    def _load_onnx(self, source: str) -> Any:
        from memtui.embed.loading import load_onnx

        folder = Path(source)
        if not folder.is_dir():
            raise ModelError(f"--backend {self.backend} needs a local model folder, not {source!r}; {_FIX}")
        log = logging.getLogger("memtui").info
        return load_onnx(folder, self.backend, threads=self.threads, log=log)

    def unload(self) -> None:
        """Drop the model so its memory can be returned; the next encode reloads it."""
        with self._lock:
            model, self._model = self._model, None
        close = getattr(model, "close", None)  # an ONNX model's slice threads
        if close is not None:
            close()

    def clear_caches(self) -> list[str]:
        """Free allocator caches that exist without unloading; return what was cleared.

        On CPU there is nothing to clear: PyTorch's CPU allocator has no cache
        (freed tensors go straight back to malloc, which the runner trims) and
        the Rust tokenizer keeps none. Only GPU devices have a cache to empty.
        """
        if self._model is None or self.backend != "torch":
            return []  # onnxruntime runs without its memory arena here: nothing is held between calls
        import torch

        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()
            return ["cuda"]
        if self.device.startswith("mps") and torch.backends.mps.is_available():
            torch.mps.empty_cache()
            return ["mps"]
        return []

    @property
    def dim(self) -> int:
        model = self.load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        return int(dim) if dim else int(self.encode(["dimension probe"]).shape[1])

    @property
    def max_seq_length(self) -> int:
        return int(self.load().max_seq_length or 512)

    # -- planning ----------------------------------------------------------

    def window(self, text: str) -> str:
        """The shortest prefix of ``text`` the model turns into the same token ids as the whole text.

        The model keeps only the first ``max_seq_length`` tokens. Take a prefix,
        tokenize it without truncation and count its *settled* tokens: those of
        every word (pre-token) but the last, which the cut may have split. A
        fast tokenizer's normalizer (lowercasing, accent stripping, CJK
        spacing) and pre-tokenizer (whitespace and punctuation splits) decide
        character by character, so those words are tokenized exactly as in the
        whole text. Once the settled tokens fill the window (plus a margin),
        the prefix is enough; otherwise double it, up to the whole text
        (whitespace-heavy texts, or one enormous word, are never cut). A
        tokenizer that cannot name its words (a slow one) gets the whole text.
        """
        size = WINDOW_CHARS_PER_TOKEN * self.max_seq_length
        if len(text) <= size:
            return text
        tokenizer = self.load().tokenizer
        need = self.max_seq_length + WINDOW_MARGIN
        while size < len(text):
            prefix = text[:size]
            settled = _settled_tokens(tokenizer, prefix)
            if settled is None:
                return text
            if settled >= need:
                return prefix
            size *= 2
        return text

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts as the model will see them (special tokens in, truncated)."""
        return self._token_lengths([self.window(t) for t in texts])

    def _token_lengths(self, windows: Sequence[str]) -> list[int]:
        return [len(row) for row in self._token_ids(windows)]

    def _token_ids(self, windows: Sequence[str]) -> list[list[int]]:
        if not windows:
            return []
        model = self.load()
        return model.tokenizer(
            list(windows),
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_seq_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]

    def plan(
        self, texts: Sequence[str], token_budget: int | None = None, max_batch: int | None = None
    ) -> list[list[int]]:
        """Cut texts into length-sorted sub-batches with len x max_len <= token_budget.

        Sorting keeps padding small; a text longer than the budget still gets a
        sub-batch of its own.
        """
        return self._plan(self.token_lengths(texts), token_budget, max_batch)

    def _plan(self, lengths: list[int], token_budget: int | None, max_batch: int | None = None) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        batches: list[list[int]] = []
        start = 0
        while start < len(order):
            batches.append(self._cut(lengths, order, start, token_budget or self.token_budget, max_batch))
            start += len(batches[-1])
        return batches

    def _cut(
        self, lengths: list[int], order: list[int], start: int, budget: int, max_batch: int | None = None
    ) -> list[int]:
        """The next sub-batch of ``order`` (ascending lengths) from ``start``: the budget's rule, written once."""
        cap = max_batch or self.max_batch
        end = start + 1  # a text longer than the budget still gets a sub-batch of its own
        while end < len(order):
            longest = lengths[order[end]]  # ascending order: the newcomer is the longest
            n = end - start + 1
            if n > cap or n * longest > budget or n * longest * longest > budget * ATTENTION_REF_LEN:
                break
            end += 1
        return order[start:end]

    # -- encoding ----------------------------------------------------------

    def encode_iter(
        self, texts: Sequence[str], *, token_budget: int | None = None
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (indices into texts, unit-norm float32 vectors) per sub-batch.

        Identical texts are encoded once and reported under all their indices.
        Each text is cut to its ``window`` first, so no tokenizer ever sees
        more of a text than can reach the model. Without ``token_budget``, each
        sub-batch is cut when it is due, at the adaptive budget's choice, and
        timed for it (the encode alone, not what the caller does in between).
        A PyTorch CPU out-of-memory
        error is re-raised as MemoryError so the runner's backoff treats it
        like any other.
        """
        positions: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            positions.setdefault(text, []).append(i)
        unique = list(positions)
        if not unique:
            return
        model = self.load()
        if self.backend == "torch":
            import torch

            no_grad: Any = torch.inference_mode
        else:
            no_grad = contextlib.nullcontext
        windows = [self.window(text) for text in unique]
        token_ids = self._token_ids(windows)
        by_ids = getattr(model, "encode_ids", None)  # onnx: the planning's ids are the model's input
        lengths = [len(row) for row in token_ids]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        start = 0
        while start < len(order):
            adaptive = self.budget if token_budget is None else None
            budget = adaptive.next() if adaptive is not None else token_budget or self.token_budget
            batch = self._cut(lengths, order, start, budget)
            start += len(batch)
            sub = [windows[j] for j in batch]
            timed = adaptive.measure(budget, sum(lengths[j] for j in batch)) if adaptive else contextlib.nullcontext()
            try:
                with timed, no_grad():
                    if by_ids is not None:
                        vectors = by_ids([token_ids[j] for j in batch])
                    else:
                        vectors = model.encode(
                            sub,
                            batch_size=len(sub),
                            convert_to_numpy=True,
                            normalize_embeddings=True,
                            show_progress_bar=False,
                        )
            except MemoryError:
                raise
            except Exception as exc:  # torch raises RuntimeError, onnxruntime its own types
                if _is_oom(exc):
                    raise MemoryError(_short(exc)) from exc
                raise
            vectors = np.asarray(vectors, dtype=np.float32)
            indices: list[int] = []
            rows: list[int] = []
            for row, j in enumerate(batch):
                for i in positions[unique[j]]:
                    indices.append(i)
                    rows.append(row)
            yield indices, vectors if len(rows) == len(sub) else vectors[rows]

    def encode(self, texts: Sequence[str], *, token_budget: int | None = None) -> np.ndarray:
        """All vectors at once, in input order (for small inputs and tests)."""
        out: np.ndarray | None = None
        for indices, vectors in self.encode_iter(texts, token_budget=token_budget):
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[indices] = vectors
        return out if out is not None else np.empty((0, self.dim), dtype=np.float32)
