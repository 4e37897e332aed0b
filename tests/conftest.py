"""Fixtures shared across test folders."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Runs started in the test process serve themselves for attaching too: keep their entries out of ~/.cache.
os.environ.setdefault("MEMTUI_RUN_DIR", tempfile.mkdtemp(prefix="memtui-test-runs-"))
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def real_embedder():
    """The packaged all-MiniLM-L6-v2, loaded once per session (it costs seconds and ~0.4 GB)."""
    from memtui.embed.model import Embedder

    embedder = Embedder()
    embedder.load()
    return embedder
