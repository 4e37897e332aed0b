"""The ONNX backends: export once, embed through the real CLI, never mix with torch vectors in the cache.

The export runs once per session into a temporary model cache (``onnx_models``);
the accuracy gate on the whole sample is bench/run.py's, here only a loose sanity check.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.artifacts import artifact_dir, artifact_name, detect_isa, model_cache_root, vector_backend
from memtui.embed.backends import BACKENDS, INT8_RUN_TOKENS, resolve_backend, run_slices
from memtui.embed.model import DEFAULT_MODEL_ID, Embedder, _packaged_model_path
from memtui.embed.store import CacheStore, key_for
from memtui.errors import UsageError
from tests.support.cli import REPO, make_sample, memtui, memtui_env

pytestmark = pytest.mark.model

TEXTS = [
    "The cat sat on the mat.",
    "Quarterly revenue grew by 12 percent.",
    "How do I reset my password?",
    "Photosynthesis turns light into chemical energy.",
    "The cat sat on the mat.",
]


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    return make_sample(tmp_path_factory.mktemp("input") / "small.jsonl.gz", domains=2, responses=30)


def env_with(models: Path, **extra: str) -> dict[str, str]:
    return memtui_env(MEMTUI_MODEL_CACHE=str(models), **extra)


# -- export -------------------------------------------------------------------------------------


def test_export_writes_both_files_atomically_into_the_model_cache(models_env):
    folder = artifact_dir(_packaged_model_path())
    assert folder.parent == model_cache_root() == models_env
    names = sorted(os.listdir(folder))
    assert names == sorted(["export.json", "model.onnx", artifact_name("onnx-int8", detect_isa())])
    info = json.loads((folder / "export.json").read_text())
    assert info["isa"] == detect_isa() and info["fused"].get("Attention") == 6  # the fused graph: fast
    assert info["recipe"] == 3 and info["int8_fp32_nodes"] == ["/inner/encoder/layer.0/output/dense/MatMul"]
    assert not [p for p in models_env.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    assert (folder / artifact_name("onnx-int8")).stat().st_size < (folder / "model.onnx").stat().st_size


def test_a_second_load_reuses_the_export(models_env):
    folder = artifact_dir(_packaged_model_path())
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    Embedder(backend="onnx-int8").load()
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


# -- vectors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_vectors_are_close_to_torch(models_env, real_embedder, backend):
    embedder = Embedder(backend=backend)
    vectors = embedder.encode(TEXTS)
    reference = real_embedder.encode(TEXTS)
    assert vectors.shape == reference.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    cos = np.sum(vectors * reference, axis=1)
    assert cos.min() > (0.9999 if backend == "onnx" else 0.95), cos  # loose: the gate is bench's
    assert np.array_equal(vectors[0], vectors[4])  # duplicates encoded once
    # The Embedder hands the planning's token ids to the model (tokenized once): same as its own tokenizing.
    direct = embedder.load().encode(TEXTS[:4], batch_size=4)
    assert np.allclose(vectors[:4], direct, atol=1e-5)


def test_windows_and_token_counts_match_torch(models_env, real_embedder):
    long = "word " * 3000 + "end"
    embedder = Embedder(backend="onnx-int8")
    assert embedder.max_seq_length == real_embedder.max_seq_length == 256
    assert embedder.token_lengths(TEXTS + [long]) == real_embedder.token_lengths(TEXTS + [long])
    assert embedder.window(long) == real_embedder.window(long)


def test_unload_and_reload_on_int8(models_env):
    embedder = Embedder(backend="onnx-int8")
    first = embedder.encode(TEXTS[:2])
    assert embedder.loaded and embedder.clear_caches() == []
    embedder.unload()
    assert not embedder.loaded
    again = embedder.encode(TEXTS[:2])  # reloads on demand
    assert embedder.loaded and np.array_equal(first, again)


def test_sub_batches_are_checkpoints_on_int8(models_env):
    embedder = Embedder(backend="onnx-int8", token_budget=64)
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(24)]
    batches = list(embedder.encode_iter(texts))
    assert len(batches) > 1  # the runner can pause, stop or open the breaker between them
    assert sorted(i for indices, _ in batches for i in indices) == list(range(24))


def test_an_int8_run_never_imports_torch(models_env):
    code = (
        "import sys; from memtui.embed.model import Embedder; e = Embedder(backend='onnx-int8'); "
        "v = e.encode(['hello there']); print(v.shape[1], 'torch' in sys.modules, "
        "'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env_with(models_env, PYTHONPATH=str(REPO)),
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["384", "False", "False"]


# -- the cache keeps backends apart ----------------------------------------------------------------


def test_keys_of_torch_are_unchanged_and_other_backends_differ():
    import hashlib

    old = hashlib.sha256(DEFAULT_MODEL_ID.encode() + b"\0" + b"hello").digest()  # every cache before backends
    assert key_for(DEFAULT_MODEL_ID, "hello") == key_for(DEFAULT_MODEL_ID, "hello", "torch") == old
    keys = {key_for(DEFAULT_MODEL_ID, "hello", b) for b in BACKENDS}
    assert len(keys) == len(BACKENDS)


INT8_TAG = f"onnx-int8/r3/{detect_isa()}"


def test_the_int8_recipe_and_isa_are_part_of_a_vectors_identity():
    # Recipe 1's int8 vectors were keyed "onnx-int8", recipe 2's "onnx-int8/r2": a newer export must not be
    # served them; nor may an AVX2 export (7-bit weights) be served a VNNI one's vectors, or the reverse.
    assert vector_backend("torch") == "torch" and vector_backend("onnx") == "onnx"
    assert vector_backend("onnx-int8") == INT8_TAG == Embedder(backend="onnx-int8").vector_backend
    tags = {
        "onnx-int8",
        "onnx-int8/r2",
        vector_backend("onnx-int8", "avx2"),
        vector_backend("onnx-int8", "avx512_vnni"),
    }
    assert len({key_for(DEFAULT_MODEL_ID, "a", tag) for tag in tags}) == 4
    assert vector_backend("onnx-int8", "arm64") == "onnx-int8/r3/arm64"


def test_int8_runs_sub_batches_in_slices_within_its_token_budget():
    assert run_slices([], 512) == [] and run_slices([3, 9], None) == [slice(0, 2)]
    assert run_slices([100, 120, 130, 200, 256, 256], 512) == [slice(0, 3), slice(3, 5), slice(5, 6)]
    assert run_slices([600, 700], 512) == [slice(0, 1), slice(1, 2)]  # a row longer than the budget runs alone
    lengths = [40 + 3 * i for i in range(70)]
    parts = run_slices(lengths, 512)
    assert [i for part in parts for i in range(len(lengths))[part]] == list(range(len(lengths)))
    assert all((p.stop - p.start) * max(lengths[p]) <= 512 for p in parts)
    assert all((p.stop - p.start + 1) * max(lengths[p.start : p.stop + 1]) > 512 for p in parts[:-1])  # none too small


def test_int8_calls_onnxruntime_in_slices_and_keeps_the_row_order(models_env, real_embedder):
    embedder = Embedder(backend="onnx-int8")
    model = embedder.load()
    assert model.run_tokens == INT8_RUN_TOKENS
    texts = [f"{'a longer sentence about the weather and the sea ' * (i % 5 + 1)}{i}" for i in range(40)]
    calls: list[tuple[int, ...]] = []
    run = model._run
    model._run = lambda ids, mask, normalize: calls.append(ids.shape) or run(ids, mask, normalize)
    vectors = embedder.encode(texts)
    assert len(calls) > 1 and all(rows * width <= INT8_RUN_TOKENS for rows, width in calls)
    cos = np.sum(vectors * real_embedder.encode(texts), axis=1)
    assert cos.min() > 0.95, cos  # each vector is its own text's, in input order


def test_int8_slices_run_side_by_side_and_give_the_very_vectors_of_one_at_a_time(models_env):
    """With 2 threads the slices run two at once, one thread each (no meeting at every op); the calls
    are the same, so the vectors are bit for bit those of a one-thread model."""
    texts = [f"{'a sentence about the tides, the moon and the harbour ' * (i % 6 + 1)}{i}" for i in range(48)]
    side_by_side, one = Embedder(backend="onnx-int8", threads=2), Embedder(backend="onnx-int8", threads=1)
    model = side_by_side.load()
    assert model.parallel == 2 and one.load().parallel == 1
    threads: set[str] = set()
    run = model._run
    model._run = lambda ids, mask, normalize: threads.add(threading.current_thread().name) or run(ids, mask, normalize)
    assert np.array_equal(side_by_side.encode(texts), one.encode(texts))
    assert len(threads) == 2 and all(name.startswith("memtui-onnx") for name in threads), threads
    side_by_side.unload()
    assert model._slices is not None and model._slices._shutdown  # unload lets the slice threads go


def test_an_old_cache_reads_as_torch(tmp_path):
    cache = tmp_path / "old.sqlite"
    with CacheStore.open(cache, DEFAULT_MODEL_ID, 4) as store:  # what memtui wrote before backends
        store.commit_batch({key_for(DEFAULT_MODEL_ID, "a"): np.ones(4, np.float32)})
    info = CacheStore.info(cache)
    assert info["backends"] == {"torch": {"vectors": 1, "domains_done": 0}}
    tables = {r[0] for r in sqlite3.connect(cache).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not any(t.startswith("backend_") for t in tables)  # a torch run leaves an old cache's schema alone
    with CacheStore.open(cache, DEFAULT_MODEL_ID, 4, backend="onnx-int8") as store:
        assert store.missing([store.key("a")]) == {store.key("a")}  # never served the torch vector
        assert store.done_domains() == set()


def test_torch_then_int8_on_one_cache_re_embeds_and_counts_per_backend(models_env, small_input, tmp_path):
    cache = tmp_path / "cache.sqlite"
    env = env_with(models_env)
    torch_run = memtui("run", "--headless", "--input", small_input, "--cache", cache, env=env)
    assert torch_run.returncode == 0, torch_run.stderr
    int8_run = memtui("run", "--headless", "--input", small_input, "--cache", cache, "--backend", "onnx-int8", env=env)
    assert int8_run.returncode == 0, int8_run.stderr
    torch_report, int8_report = json.loads(torch_run.stdout), json.loads(int8_run.stdout)
    assert int8_report["status"] == "success" and int8_report["domains_done"] == 2
    assert (torch_report["backend"], int8_report["backend"]) == (
        "torch",
        INT8_TAG,
    )  # the report names its vectors' maker
    assert int8_report["items_embedded"] == torch_report["items_embedded"] > 0  # nothing served across backends
    assert "Model loaded" in int8_run.stderr
    info = json.loads(memtui("cache", "info", "--cache", cache, "--json", env=env).stdout)
    n = torch_report["items_embedded"]
    assert info["backends"] == {
        "torch": {"vectors": n, "domains_done": 2},
        INT8_TAG: {"vectors": n, "domains_done": 2},
    }
    assert info["vectors"] == 2 * n
    # Reruns resume within their own backend: nothing embedded, no model loaded.
    for extra in ((), ("--backend", "onnx-int8")):
        again = memtui("run", "--headless", "--input", small_input, "--cache", cache, *extra, env=env)
        assert again.returncode == 0 and json.loads(again.stdout)["items_embedded"] == 0
        assert "Model loaded" not in again.stderr
    # The int8 vectors sit under their own keys, close to torch's.
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    text = "placeholder"
    rows = dict(con.execute("SELECT key, vector FROM embeddings").fetchall())
    keyed = con.execute("SELECT r.key, b.key FROM responses r JOIN backend_responses b ON r.id = b.id").fetchall()
    con.close()
    assert keyed and all(a != b for a, b in keyed)
    cos = [float(np.frombuffer(rows[a], "<f4") @ np.frombuffer(rows[b], "<f4")) for a, b in keyed]
    assert min(cos) > 0.95, text


# -- choosing the backend ---------------------------------------------------------------------------


def test_backend_layering(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[memory]\nwarning-memory = 1.0\n[embed]\nbackend = "onnx"\n')
    assert resolve_backend(None, None, env={}) == "torch"
    assert resolve_backend(None, config, env={}) == "onnx"
    assert resolve_backend(None, config, env={"MEMTUI_BACKEND": "onnx-int8"}) == "onnx-int8"
    assert resolve_backend("torch", config, env={"MEMTUI_BACKEND": "onnx-int8"}) == "torch"
    with pytest.raises(UsageError, match="MEMTUI_BACKEND 'int4' is not a backend"):
        resolve_backend(None, None, env={"MEMTUI_BACKEND": "int4"})


def test_the_config_key_and_env_reach_a_run(models_env, small_input, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[embed]\nbackend = "onnx-int8"\n')
    cache = tmp_path / "cache.sqlite"
    run = memtui(
        "run",
        "--headless",
        "--input",
        small_input,
        "--cache",
        cache,
        "--limit",
        "1",
        "--config",
        config,
        env=env_with(models_env),
    )
    assert run.returncode == 0, run.stderr
    assert set(json.loads(memtui("cache", "info", "--cache", cache, "--json").stdout)["backends"]) == {INT8_TAG}
    bad = memtui(
        "run", "--headless", "--input", small_input, "--cache", cache, env=env_with(models_env, MEMTUI_BACKEND="gpu")
    )
    assert bad.returncode == 2 and "MEMTUI_BACKEND 'gpu' is not a backend" in bad.stderr


HIDE_ONNXRUNTIME = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Hide())
"""


def test_without_the_extra_int8_says_what_to_install(tmp_path, small_input):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(HIDE_ONNXRUNTIME)
    env = memtui_env(
        PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(REPO)]), MEMTUI_MODEL_CACHE=str(tmp_path / "models")
    )
    run = memtui(
        "run", "--headless", "--input", small_input, "--cache", tmp_path / "c.sqlite", "--backend", "onnx-int8", env=env
    )
    assert run.returncode == 2, run.stderr
    assert "pip install 'memtui[onnx]'" in run.stderr and "onnxruntime" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "c.sqlite").exists()  # refused before any cache file was made


def test_tune_compares_the_backends(models_env, small_input):
    out = memtui("tune", "--input", small_input, "--limit", "24", "--json", env=env_with(models_env), timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == set(BACKENDS) and result["texts"] == 24
    assert rows["onnx-int8"]["torch_imported"] is False and rows["torch"]["torch_imported"] is True
    assert rows["onnx"]["cosine_mean"] > 0.9999 and rows["onnx-int8"]["cosine_mean"] > 0.95
    assert rows["openvino"]["torch_imported"] is False and rows["openvino"]["cosine_p1"] > 0.9999
    assert all(r["peak_rss_bytes"] > 0 and r["texts_per_s"] > 0 for r in rows.values())
    assert result["recommendation"] in BACKENDS
    table = memtui("tune", "--input", small_input, "--limit", "8", env=env_with(models_env), timeout=600)
    assert table.returncode == 0 and "recommendation: --backend" in table.stdout
