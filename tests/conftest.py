"""Fixtures shared across test folders."""

from __future__ import annotations

import os
import tempfile

import pytest

from tests.support import lanes

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


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory):
    """A model cache with the packaged model exported (fp32 + int8): the export runs once per session.

    Tests that tamper with an export copy it first (``tests/hostile/test_model_cache.py``).
    """
    from memtui.embed.backends import ensure_exported
    from memtui.embed.model import _packaged_model_path

    root = tmp_path_factory.mktemp("models")
    old = os.environ.get("MEMTUI_MODEL_CACHE")
    os.environ["MEMTUI_MODEL_CACHE"] = str(root)
    try:
        ensure_exported(_packaged_model_path(), "onnx-int8")
    finally:
        if old is None:
            os.environ.pop("MEMTUI_MODEL_CACHE", None)
        else:
            os.environ["MEMTUI_MODEL_CACHE"] = old
    return root


@pytest.fixture(scope="session")
def large_cache(tmp_path_factory):
    """A cache of 200,000 rows, built once per session and only read (tests/support/large_cache.py)."""
    from tests.support.large_cache import build

    return build(tmp_path_factory.mktemp("large") / "large.sqlite")


def pytest_configure(config: pytest.Config) -> None:
    if lanes.fast_lane():
        lanes.select_fast_lane(config)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The markers follow from what each test uses (``tests/support/lanes.py``), before ``-m`` selects."""
    lanes.mark_lanes(items)


@pytest.fixture(autouse=True)
def guard_fast_lane(request):
    """In the fast lane, a test that loads the model's libraries fails, naming itself: its lane is wrong."""
    if not lanes.fast_lane():
        yield
        return
    before = lanes.model_libraries_loaded()
    yield
    loaded = [name for name in lanes.model_libraries_loaded() if name not in before]
    if loaded:
        pytest.fail(
            f"{request.node.nodeid} imported {', '.join(loaded)} in the fast lane: it reaches the real model, "
            "so mark it model (or make what it uses visible to tests/support/lanes.py)"
        )
