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


def counted_deadly_embed(marks: str, domain: str, texts: list[str]):
    """``deadly_embed`` that first appends a line to the file ``marks`` each time it is about to kill its
    worker (the page cache keeps the line through the SIGKILL): how many deaths the domain caused."""
    if domain == DEADLY:
        fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)
    return deadly_embed(domain, texts)
