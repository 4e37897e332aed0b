"""How much memory a model needs to load and encode, estimated before loading it.

Never imports torch: it looks only at the size of the model's weight files.

    need = RUNTIME_BYTES + WEIGHTS_FACTOR x (weights on disk)

Measured here (Python 3.11, torch CPU, sentence-transformers, 2 cores, the packaged
all-MiniLM-L6-v2 whose model.safetensors is 86.7 MiB):

* RSS after importing memtui + torch + sentence-transformers, no model: 413 MiB
  (anon 307, file-backed 107); after loading the model: 443 MiB (anon 325, file 118).
* peak RSS (VmHWM) of a small encode at the default token budget: 615-645 MiB;
  a 600-text cache run peaked at 0.65-0.71 GiB (file-backed pages included).
* ``memtui run`` in a v1 memory cgroup with a cold page cache: killed (137) at
  400 MiB (60 texts) and 450 MiB (600 texts); 500 MiB finished 600 texts only by
  thrashing (failcnt 398k, ~1.5x slower than at 550 MiB); 550 MiB finished.

So the runtime costs ~400 MiB whatever the model, and the model about twice its
weights (the weights themselves, resident while encoding, plus load-time copies
and activations at the default token budget): 400 + 2 x 86.7 = 573 MiB (0.56 GiB)
for the default model, between the last limit that failed and the first that ran well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from memtui.errors import ModelError, ResourceError
from memtui.memory.config import BREAKER_FRACTION
from memtui.memory.probe import MemoryLimit
from memtui.memory.units import GB, MB

RUNTIME_BYTES = 400 * MB
WEIGHTS_FACTOR = 2.0
#: Folders that hold alternative exports sentence-transformers does not load on CPU by default.
_SKIP_DIRS = frozenset({"onnx", "openvino", ".git", ".cache"})
_WEIGHT_SUFFIXES = ((".safetensors",), (".bin", ".pt", ".pth"))  # preferred kind first, as the loader does


@dataclass(frozen=True)
class Footprint:
    need_bytes: int
    weights_bytes: int | None  # None: the model's folder was not found (a hub name not in the local cache)
    folder: Path | None

    @property
    def basis(self) -> str:
        runtime = f"{RUNTIME_BYTES / GB:.2f}GB runtime"
        if self.weights_bytes is None:
            return f"{runtime}; model weights unknown"
        return f"{runtime} + {WEIGHTS_FACTOR:g} x {self.weights_bytes / GB:.2f}GB weights"


def weights_bytes(folder: Path) -> int:
    """Bytes of the weight files the loader reads: safetensors if any, else PyTorch .bin/.pt."""
    found: dict[str, int] = {}
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for name in files:
            if name.endswith(_WEIGHT_SUFFIXES[0] + _WEIGHT_SUFFIXES[1]) and not name.startswith("training_args"):
                try:
                    found[os.path.join(root, name)] = os.stat(os.path.join(root, name)).st_size
                except OSError:
                    continue
    for suffixes in _WEIGHT_SUFFIXES:
        sizes = [size for path, size in found.items() if path.endswith(suffixes)]
        if sizes:
            return sum(sizes)
    return 0


def model_folder(model: str | os.PathLike[str] | None) -> Path | None:
    """The folder the model loads from, found as the Embedder finds it; None if unknown."""
    from memtui.embed.model import _DEFAULT_ALIASES, _packaged_model_path  # no torch: model.py imports it lazily

    name = None if model is None else str(model)
    if name is None or name in _DEFAULT_ALIASES:
        try:
            return _packaged_model_path()
        except ModelError:
            return None
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    return _hub_cache_folder(name)


def _hub_cache_folder(name: str) -> Path | None:
    """A hub name's newest snapshot in the local Hugging Face cache, if any."""
    if name.count("/") > 1:
        return None
    repo = name if "/" in name else f"sentence-transformers/{name}"
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub"
    )
    snapshots = Path(hub) / ("models--" + repo.replace("/", "--")) / "snapshots"
    try:
        candidates = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime)
    except OSError:
        return None
    return candidates[-1] if candidates else None


def estimate(model: str | os.PathLike[str] | None = None) -> Footprint:
    """Estimated peak memory to load ``model`` (None: the packaged default) and encode with it."""
    folder = model_folder(model)
    weights = weights_bytes(folder) if folder is not None else None
    need = RUNTIME_BYTES + int(WEIGHTS_FACTOR * (weights or 0))
    return Footprint(need_bytes=need, weights_bytes=weights, folder=folder)


def require_room(
    limit: MemoryLimit | None, model: str | os.PathLike[str] | None = None, *, lowered_breaker_bytes: int | None = None
) -> Footprint:
    """Raise ResourceError (exit 1) if the job cannot run under ``limit``; else return the estimate.

    Below the model's need the kernel kills the run. ``lowered_breaker_bytes`` is a default
    breaker that was lowered to fit the limit: below the need it would trip on the model
    alone and abort after its timeout, so that is refused too (an explicit --max-memory
    is the operator's choice and is left alone).
    """
    footprint = estimate(model)
    need = footprint.need_bytes
    if limit is None or limit.bytes <= 0:
        return footprint
    where = f"memory limit {limit.bytes / GB:.2f}GB ({limit.source})"
    if limit.bytes < need:
        raise ResourceError(
            f"{where} is below the ~{need / GB:.2f}GB this model needs to load and encode ({footprint.basis}); "
            "raise the container's memory limit or run on a bigger machine"
        )
    if lowered_breaker_bytes is not None and lowered_breaker_bytes < need:
        raise ResourceError(
            f"{where} leaves a default breaker of {lowered_breaker_bytes / GB:.2f}GB, below the ~{need / GB:.2f}GB "
            f"this model needs to load and encode ({footprint.basis}); raise the container's memory limit to "
            f"{need / BREAKER_FRACTION / GB:.2f}GB or more, or set --max-memory between the two yourself"
        )
    return footprint
