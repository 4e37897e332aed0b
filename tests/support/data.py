"""Tiny input files for engine tests: a few domains, all 9 model x prompt-type pairs each."""

from __future__ import annotations

import json
from pathlib import Path

MODELS = ("claude", "gpt-4o", "deepseek")
PROMPTS = ("trustworthiness", "reputation", "security")


def write_input(path: Path, domains: int = 4, per_pair: int = 1, words: int = 12) -> Path:
    with path.open("w") as fh:
        for d in range(domains):
            domain = f"site{d:03d}.example"
            for model in MODELS:
                for prompt in PROMPTS:
                    for k in range(per_pair):
                        text = f"{model} on {domain} ({prompt} #{k}): " + " ".join(f"w{(d * 7 + k + i) % 97}" for i in range(words))
                        fh.write(json.dumps({"id": f"{domain}-{model}-{prompt}-{k}", "domain": domain, "model": model,
                                             "prompt_type": prompt, "response": text}) + "\n")
    return path


def domain_names(domains: int) -> list[str]:
    return [f"site{d:03d}.example" for d in range(domains)]
