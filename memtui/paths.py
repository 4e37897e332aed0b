"""Default locations: the bundled sample, the cache, the config file."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_INPUT = REPO_ROOT / "sample_data" / "responses.jsonl.gz"


def default_cache() -> Path:
    """$MEMTUI_CACHE, else $XDG_CACHE_HOME/memtui/embeddings.sqlite (~/.cache/memtui/...)."""
    if os.environ.get("MEMTUI_CACHE"):
        return Path(os.environ["MEMTUI_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "memtui" / "embeddings.sqlite"


def default_config() -> Path | None:
    """$MEMTUI_CONFIG, else ~/.config/memtui/config.toml when it exists."""
    if os.environ.get("MEMTUI_CONFIG"):
        return Path(os.environ["MEMTUI_CONFIG"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    candidate = base / "memtui" / "config.toml"
    return candidate if candidate.exists() else None
