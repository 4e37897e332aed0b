"""A stored vector is reused only if it is the one that was stored.

A flipped byte in a vector blob (a bad disk, a bad copy, a hand edit) used to
be reused without notice, and every agreement score over it was wrong. Each
vector now gets a CRC-32 over its key and its bytes, in a table of its own
(``vector_sums``; an older memtui ignores it), written in the vector's own
transaction. A vector without one (a cache made before) is "unknown" and
must at least look like a vector of the model: the right size, finite, and
unit length (every backend normalises). A vector that fails is taken as
missing, re-embedded and replaced, with a warning naming how many.
"""

from __future__ import annotations

import zlib

import numpy as np

SUM_TABLE = "CREATE TABLE IF NOT EXISTS vector_sums (key BLOB PRIMARY KEY, crc INTEGER NOT NULL)"
#: How far from unit length a vector without a checksum may be (float32 rounding is ~1e-7).
NORM_TOLERANCE = 1e-3


def checksum(key: bytes, blob: bytes) -> int:
    """CRC-32 of the key and the bytes: a blob moved to another key fails too."""
    return zlib.crc32(blob, zlib.crc32(key))


def fault(key: bytes, blob: bytes, crc: int | None, dim: int | None) -> str | None:
    """Why a stored vector cannot be trusted, or None."""
    if not isinstance(blob, bytes):
        return "is not a vector blob"
    if crc is not None:
        return None if checksum(key, blob) == crc else "fails its checksum"
    if len(blob) % 4 or (dim is not None and len(blob) != 4 * dim):
        return f"has {len(blob)} bytes"
    vec = np.frombuffer(blob, dtype="<f4")
    if not np.isfinite(vec).all():
        return "holds NaN or infinity"
    norm = float(np.linalg.norm(vec.astype(np.float64)))
    if norm != 0.0 and abs(norm - 1.0) > NORM_TOLERANCE:
        return f"has length {norm:.4g}, not 1"
    return None
