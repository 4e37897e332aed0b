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

The need follows the backend (``NEEDS``): onnxruntime holds no torch. Peak RSS (VmHWM, /usr/bin/time)
of ``memtui run --mode cache --limit 40`` on the bundled sample, on a loaded 2-core machine:

* torch: 0.72 GiB (737 MiB; file-backed pages included, which a cgroup reclaims: hence the need above,
  0.56 GiB, from the limits it ran under);
* onnx (fp32): 0.65 GiB (670 MiB); 10 domains finished in v1 cgroups of 450 and 520 MiB (their peak
  usage 266 and 309 MiB) -> need 256 MiB + 3 x weights = 0.50 GiB, torch's need scaled by the two peaks;
* onnx-int8: 0.23 GiB (240 MiB; the whole sample: 0.24 GB, BENCHMARKS.md); 10 domains finished in v1
  cgroups of 280 and 330 MiB (peak usage 178 and 188 MiB) -> need 192 MiB + 1 x weights = 0.27 GiB
  (+16% over VmHWM): it runs under the 0.39 GB cgroup that torch's estimate refused.
* openvino (the onnx backend's fp32 ``model.onnx`` compiled by OpenVINO, no torch): 0.42-0.47 GB for the
  whole sample on an AVX-512 machine in bf16 (BENCHMARKS.md, "The OpenVINO backend"); fp32 on AVX2 is in
  the same range -> need 224 MiB + 3 x weights = 0.47 GiB (480 MiB, the backend's measured peak).

The ONNX backends' one-time export (``memtui.embed.onnx_export``, each step in its own process) has its
own need, checked before it starts (``require_export_room``): its steps peak at 0.74 GiB (the torch
trace), 0.83 GiB (ONNX Runtime's optimizer) and 0.40 GiB (quantization); run in one process they had
peaked at 1.11 GiB (and a 1.1 GB cgroup killed it; split, it finishes there). Need: 128 MiB + 10 x weights
= 0.97 GiB (+14% over the largest step and its parent).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from memtui.errors import MemtuiError, ModelError, ResourceError
from memtui.memory.config_layers import BREAKER_FRACTION
from memtui.memory.probe import MemoryLimit
from memtui.memory.units import GB, MB

RUNTIME_BYTES = 400 * MB
WEIGHTS_FACTOR = 2.0
#: (runtime bytes, x weights on disk) per backend: measured peaks plus a margin (the module's docstring).
NEEDS: dict[str, tuple[int, float]] = {
    "torch": (RUNTIME_BYTES, WEIGHTS_FACTOR),
    "onnx": (256 * MB, 3.0),
    "onnx-int8": (192 * MB, 1.0),
    "openvino": (224 * MB, 3.0),
}
#: The one-time ONNX export (its largest step, in a child process beside this one).
EXPORT_NEED: tuple[int, float] = (128 * MB, 10.0)
EXPORT_FIX = "python -m memtui.embed.onnx_export"
#: Folders that hold alternative exports sentence-transformers does not load on CPU by default.
_SKIP_DIRS = frozenset({"onnx", "openvino", ".git", ".cache"})
_WEIGHT_SUFFIXES = ((".safetensors",), (".bin", ".pt", ".pth"))  # preferred kind first, as the loader does


@dataclass(frozen=True)
class Footprint:
    need_bytes: int
    weights_bytes: int | None  # None: the model's folder was not found (a hub name not in the local cache)
    folder: Path | None
    backend: str = "torch"

    @property
    def basis(self) -> str:
        runtime_bytes, factor = NEEDS.get(self.backend, NEEDS["torch"])
        runtime = f"{runtime_bytes / GB:.2f}GB runtime"
        if self.backend != "torch":
            runtime = f"{self.backend}: {runtime}"
        if self.weights_bytes is None:
            return f"{runtime}; model weights unknown"
        return f"{runtime} + {factor:g} x {self.weights_bytes / GB:.2f}GB weights"


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
    from memtui.embed.default_model import DEFAULT_ALIASES, packaged_model_path

    name = None if model is None else str(model)
    if name is None or name in DEFAULT_ALIASES:
        try:
            return packaged_model_path()
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


def estimate(model: str | os.PathLike[str] | None = None, backend: str = "torch") -> Footprint:
    """Estimated peak memory to load ``model`` (None: the packaged default) and encode with ``backend``."""
    folder = model_folder(model)
    weights = weights_bytes(folder) if folder is not None else None
    runtime_bytes, factor = NEEDS.get(backend, NEEDS["torch"])
    need = runtime_bytes + int(factor * (weights or 0))
    return Footprint(need_bytes=need, weights_bytes=weights, folder=folder, backend=backend)


def export_need(weights: int | None) -> int:
    runtime_bytes, factor = EXPORT_NEED
    return runtime_bytes + int(factor * (weights or 0))


def require_export_room(limit: MemoryLimit | None, folder: Path, *, used_bytes: int | None = None) -> None:
    """Refuse (ResourceError, exit 1) to start the one-time ONNX export where the limit cannot hold it.

    ``used_bytes`` is what this process already holds in the same limit (its RSS, by default): the
    export runs in a child beside it. Refused before it starts, never killed half-way.
    """
    if limit is None or limit.bytes <= 0:
        return
    if used_bytes is None:
        from memtui.memory.probe import ProcessProbe

        probe = ProcessProbe()
        used_bytes = probe.rss_bytes()
        probe.close()
    need = export_need(weights_bytes(folder))
    room = limit.bytes - used_bytes
    if room < need:
        raise ResourceError(
            f"the one-time ONNX export of {folder} needs ~{need / GB:.2f}GB and the memory limit "
            f"{limit.bytes / GB:.2f}GB ({limit.source}) leaves {max(room, 0) / GB:.2f}GB beside this process; "
            f"run `{EXPORT_FIX}` once with more memory (same MEMTUI_MODEL_CACHE), or use --backend torch"
        )


def require_room(
    limit: MemoryLimit | None,
    model: str | os.PathLike[str] | None = None,
    *,
    lowered_breaker_bytes: int | None = None,
    backend: str = "torch",
) -> Footprint:
    """Raise ResourceError (exit 1) if the job cannot run under ``limit``; else return the estimate.

    Below the model's need the kernel kills the run. ``lowered_breaker_bytes`` is a default
    breaker that was lowered to fit the limit: below the need it would trip on the model
    alone and abort after its timeout, so that is refused too (an explicit --max-memory
    is the operator's choice and is left alone). An ONNX backend whose export is still to be
    made needs room for that too (``require_export_room``), checked here before any face starts.
    """
    footprint = estimate(model, backend)
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
    if backend != "torch" and footprint.folder is not None and not _exported(footprint.folder, backend):
        require_export_room(limit, footprint.folder)
    return footprint


def _exported(folder: Path, backend: str) -> bool:
    """Whether the export looks made (its manifest lists the file); the load verifies it for real."""
    from memtui.embed.artifacts import artifact_dir, artifact_name
    from memtui.embed.model_cache import read_manifest

    try:
        manifest = read_manifest(artifact_dir(folder))
    except (OSError, MemtuiError):
        return False
    return manifest is not None and artifact_name(backend) in manifest["files"]
