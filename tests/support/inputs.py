"""Tiny JSON Lines inputs written by tests: domain/model/prompt_type/response/id, grouped by domain."""

from __future__ import annotations

import json
from pathlib import Path

MODELS = ("claude", "gpt-4o", "deepseek")
PROMPTS = ("trust", "reputation", "security")


def write_input(path: Path, domains: int = 6, per_domain: int = 4, *, words: int = 12) -> Path:
    """``domains`` domains with ``per_domain`` distinct responses each, cycling through the 9 model x
    prompt-type pairs (9 per domain covers them all); returns the path."""
    with path.open("w", encoding="utf-8") as out:
        for d in range(domains):
            domain = f"site{d:03d}.example"
            for r in range(per_domain):
                text = " ".join(f"w{d}_{r}_{k}" for k in range(words))
                out.write(
                    json.dumps(
                        {
                            "id": f"{domain}-{r}",
                            "domain": domain,
                            "model": MODELS[r % 3],
                            "prompt_type": PROMPTS[(r // 3) % 3],
                            "response": f"{domain} answer {r}: {text}",
                        }
                    )
                    + "\n"
                )
    return path


def domain_names(domains: int) -> list[str]:
    return [f"site{d:03d}.example" for d in range(domains)]
