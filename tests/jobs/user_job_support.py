"""A user's job module for the tests, written into a private folder put on PYTHONPATH (as an operator would)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from tests.support.cli import memtui, memtui_env

JOB_MODULE = '''
import json, os, time

CALLS = os.environ.get("JOB_CALLS", os.devnull)


def _count(items):
    with open(CALLS, "a") as fh:
        fh.write(json.dumps([it.get("id") for it in items]) + "\\n")


def length(items):
    """The length of each item's response (or text)."""
    _count(items)
    return [{"chars": len(it.get("response") or it.get("text") or "")} for it in items]


def slow(items):
    _count(items)
    time.sleep(float(os.environ.get("JOB_SLEEP", "0.05")))
    return [it["text"].upper() for it in items]


def picky(items):
    """Raises on a batch holding any item whose text has 'bad' in it."""
    _count(items)
    for it in items:
        if "bad" in it["text"]:
            raise ValueError(f"cannot take {it['text']!r}\\nsecond line")
    return [len(it["text"]) for it in items]


def hang(items):
    """Never returns on a batch holding an item whose text is 'hang' (a stuck call: only a bounded stop ends it)."""
    _count(items)
    if any(it["text"] == "hang" for it in items):
        import threading
        threading.Event().wait()
    return [it["text"] for it in items]


def short(items):
    return [1 for _ in items[1:]]


NOT_CALLABLE = 42
'''


def job_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "jobs"
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / "jobmod.py").write_text(JOB_MODULE)
    (folder / "jobmod.py").chmod(0o644)
    (folder / "brokenmod.py").write_text("raise RuntimeError('boom at import')\n")
    return folder


def job_env(folder: Path, calls: Path, **extra: str) -> dict[str, str]:
    return memtui_env(PYTHONPATH=str(folder), JOB_CALLS=str(calls), **extra)


def write_items(path: Path, texts: list[str], *, ids: bool = True) -> Path:
    with open(path, "w") as fh:
        for i, text in enumerate(texts):
            item = {"id": f"i{i:04d}", "text": text} if ids else {"text": text}
            fh.write(json.dumps(item) + "\n")
    return path


def calls_of(calls: Path) -> list[list]:
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines()]


def items_called(calls: Path) -> int:
    return sum(len(c) for c in calls_of(calls))


def results(path: Path, *extra: str, env: dict[str, str] | None = None) -> list[dict]:
    done = memtui("results", path, *extra, env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def committed(path: Path) -> int:
    """Results committed, read as any reader would (read-only; a live run may be writing)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def run_job(folder: Path, calls: Path, *args: str | os.PathLike[str], timeout: float = 300, **env: str):
    return memtui("run", *args, "--headless", env=job_env(folder, calls, **env), timeout=timeout)
