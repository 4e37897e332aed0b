"""A task that kills its worker process on one domain (as an OOM kill would), for the quarantine test."""

from __future__ import annotations

import os
import signal

from memtui.cluster.plugin import embed_domain

DEADLY = "site001.example"


def deadly_embed(domain: str, texts: list[str]):
    if domain == DEADLY:
        os.kill(os.getpid(), signal.SIGKILL)
    return embed_domain(domain, texts)
