"""Token counts and a language guess per response, with the model's own tokenizer (docs/jobs.md).

    PYTHONPATH=examples memtui run --job token_language:count --input sample_data/responses.jsonl.gz \\
        --output tokens.sqlite
    memtui results tokens.sqlite | head -3      # {"key": ..., "result": {"tokens": 412, "language": "en"}}

The tokenizer (all-MiniLM-L6-v2's, packaged with memtui) loads at the first call; memtui may drop it
when memory stays high (``on_cleanup(unload=True)``) and the next call loads it again. The language
is a stopword count over six languages: a cheap guess, enough to spot the odd response out.
"""

from __future__ import annotations

import re
from typing import Any

import memtui

_STOPWORDS = {
    "en": {"the", "and", "is", "of", "to", "in", "that", "it", "for", "with"},
    "es": {"el", "la", "de", "que", "y", "en", "los", "es", "por", "una"},
    "fr": {"le", "la", "les", "de", "et", "est", "que", "une", "des", "pour"},
    "de": {"der", "die", "und", "das", "ist", "nicht", "mit", "ein", "zu", "den"},
    "it": {"il", "di", "che", "e", "la", "per", "non", "una", "sono", "del"},
    "pt": {"o", "de", "que", "e", "do", "da", "em", "um", "para", "não"},
}
_WORD = re.compile(r"[^\W\d_]+")
_tokenizer: Any = None


def _tok() -> Any:
    global _tokenizer
    if _tokenizer is None:
        from transformers import AutoTokenizer  # noqa: PLC0415 - loads at the first call

        from memtui.embed.default_model import packaged_model_path  # noqa: PLC0415

        _tokenizer = AutoTokenizer.from_pretrained(str(packaged_model_path()))
        _tokenizer.model_max_length = 1 << 30  # counting, not encoding: no truncation warning
    return _tokenizer


@memtui.on_cleanup(unload=True)
def drop_tokenizer() -> None:
    global _tokenizer
    _tokenizer = None


def language(text: str) -> str:
    words = [w.lower() for w in _WORD.findall(text[:4000])]
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] >= 2 else "und"


def count(items: list[dict]) -> list[dict]:
    texts = [str(item.get("response") or item.get("text") or "") for item in items]
    ids = _tok()(texts, add_special_tokens=True)["input_ids"]
    return [{"tokens": len(i), "language": language(t)} for i, t in zip(ids, texts)]
