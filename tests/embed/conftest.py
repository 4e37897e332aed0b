"""Fixtures of the embedding tests: the session's one ONNX export (``onnx_models`` in tests/conftest.py) as
this test's model cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def models_env(onnx_models, monkeypatch) -> Path:
    monkeypatch.setenv("MEMTUI_MODEL_CACHE", str(onnx_models))
    return onnx_models
