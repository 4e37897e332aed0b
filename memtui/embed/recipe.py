"""The int8 export recipe's version, on its own so that the backends (which name model-cache folders and
tag vectors with it) and the exporter (which writes it into the manifest) share it without importing
each other.

Bump when the recipe changes: it is part of the model-cache folder's name and of an int8 vector's
identity in the embedding cache (``memtui.embed.artifacts.vector_backend``).
1: every MatMul and Attention int8. 2: the first layer's FFN output MatMul kept fp32.
3: recipe 2's export, run in slices of at most 384 tokens per call (``onnx_export`` step 4).
"""

from __future__ import annotations

RECIPE_VERSION = 3
