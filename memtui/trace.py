"""A small rolling trace beside the cache, so the next start can tell how the last one ended.

A run appends JSON lines: ``begin``, each ``batch`` admitted, memory ``samples``
about once a second, and ``end``. A trace whose last run has no ``end`` was
killed (SIGKILL, the OOM killer, a power cut): the next start says so and shows
the last samples and the batch that was in flight. The file is kept under
``max_bytes`` by dropping its older half; it holds no response text.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from memtui.errors import UsageError
from memtui.memory.units import format_gb
from memtui.safefs import check_existing, open_private, write_atomic

MAX_BYTES = 64 * 1024
log = logging.getLogger("memtui")


@dataclass(frozen=True)
class AbnormalEnd:
    pid: int
    started_at: float
    last_seen_at: float
    last_samples: list[tuple[float, int]]
    last_batch: list[str]
    rss_peak: int

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.last_seen_at))
        samples = ", ".join(format_gb(r) for _, r in self.last_samples[-5:]) or "none"
        batch = (
            ", ".join(self.last_batch[:5]) + (" ..." if len(self.last_batch) > 5 else "") if self.last_batch else "none"
        )
        # No end record says only that it did not finish cleanly: SIGKILL and the OOM killer leave
        # none, but neither do a crash, a power cut or a trace that could not be written (a full disk).
        return (
            f"⚠️ The previous run (pid {self.pid}) ended abnormally: it left no end record (killed by a "
            f"signal such as SIGKILL or the OOM killer, a crash, or a trace it could not write) after {when}: "
            f"last memory samples {samples}; peak {format_gb(self.rss_peak)}; "
            f"batch in flight: {batch}. Its committed batches are kept; this run resumes after them."
        )


def _still_running(pid: int, since: float) -> bool:
    """Whether ``pid`` is a live process, not this one, that started no later than ``since`` (so it is the
    process that began that run, not a later one that got its pid)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
    except (OSError, ValueError, IndexError, StopIteration):
        return False  # cannot tell: say what the trace says
    return fields[0] not in ("Z", "X") and started <= since + 1.0  # btime has whole seconds


class RunTrace:
    def __init__(
        self, path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES, sample_every_s: float = 1.0
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.sample_every_s = sample_every_s
        self._last_sample = 0.0
        self._fh: TextIO | None = None
        self._begin: dict[str, Any] | None = None

    # -- reading --------------------------------------------------------------------
    def previous_abnormal_end(self) -> AbnormalEnd | None:
        """The last run recorded here, if it began and never ended."""
        records = self._read()
        begin_at = max((i for i, r in enumerate(records) if r.get("kind") == "begin"), default=None)
        if begin_at is None:
            return None
        run = records[begin_at:]
        if any(r.get("kind") == "end" for r in run):
            return None
        if _still_running(int(run[0].get("pid", 0)), float(run[0].get("at", 0))):
            return None  # it let go of the cache's lock and writes its end record next: it is ending, not killed
        samples = [tuple(s) for r in run if r.get("kind") == "samples" for s in r.get("samples", [])]
        batches = [r for r in run if r.get("kind") == "batch"]
        return AbnormalEnd(
            pid=int(run[0].get("pid", 0)),
            started_at=float(run[0].get("at", 0)),
            last_seen_at=float(run[-1].get("at", 0)),
            last_samples=[(float(t), int(r)) for t, r in samples[-10:]],
            last_batch=list(batches[-1].get("domains", [])) if batches else [],
            rss_peak=max((int(r) for _, r in samples), default=0),
        )

    def _read(self) -> list[dict[str, Any]]:
        try:
            # safefs's rule: a planted link or FIFO reads nothing, someone else's file is no record of ours.
            fd = open_private(self.path, os.O_RDONLY, "trace", create=False)
        except (OSError, UsageError):
            return []
        with os.fdopen(fd, "rb") as fh:
            lines = fh.read().decode("utf-8", "replace").splitlines()
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by the kill itself
            if isinstance(record, dict):
                records.append(record)
        return records

    # -- writing --------------------------------------------------------------------
    def begin(self, **fields: Any) -> None:
        self._compact()
        self._fh = self._open_append()
        self._begin = {"at": time.time(), "kind": "begin", "pid": os.getpid(), **fields}
        self._write(self._begin)

    def batch(self, number: int, domains: list[str], rss: int) -> None:
        self._write({"kind": "batch", "number": number, "domains": domains, "rss": rss})

    def samples(self, history: Callable[[], tuple[tuple[float, int], ...]], now: float) -> None:
        """Record the recent samples, at most once per ``sample_every_s`` (``history`` is called only then)."""
        if now - self._last_sample < self.sample_every_s:
            return
        self._last_sample = now
        recent = history()[-10:]
        self._write({"kind": "samples", "samples": [[round(t, 3), r] for t, r in recent]})

    def end(self, status: str) -> None:
        self._write({"kind": "end", "status": status})
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        if "at" not in record:
            record = {"at": time.time(), **record}
        try:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()  # in the page cache: survives a SIGKILL of this process
            if self._fh.tell() > self.max_bytes:
                self._fh.close()
                self._compact(self._begin)
                self._fh = self._open_append()
        except OSError:
            self._fh = None

    def _open_append(self) -> TextIO | None:
        """The trace for appending: never through a link, never another user's file, always 0600."""
        try:
            if not self.path.parent.is_dir():
                old_umask = os.umask(0o077)
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                finally:
                    os.umask(old_umask)
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND, "trace")
        except (OSError, UsageError) as exc:  # the trace is a help, never a reason to fail a run: say why it is off
            reason = str(exc) if isinstance(exc, UsageError) else f"{self.path}: {exc.strerror or exc}"
            log.warning(f"⚠️ no run trace this time: {reason}")
            return None
        return os.fdopen(fd, "a", encoding="utf-8")

    def _compact(self, keep: dict[str, Any] | None = None) -> None:
        """Keep the file bounded: drop the older half past max_bytes (keeping this run's ``begin``)."""
        try:
            st = check_existing(self.path, "trace")
            if st is None or st.st_size <= self.max_bytes:
                return
            data = "\n".join(json.dumps(r) for r in self._read()).encode() + b"\n"
        except (OSError, UsageError):
            return  # not ours to rewrite: _open_append will refuse it too
        tail = data[len(data) - self.max_bytes // 2 :]
        tail = tail[tail.find(b"\n") + 1 :]
        if keep is not None:
            tail = json.dumps(keep).encode() + b"\n" + tail
        try:
            write_atomic(self.path, tail, "trace")
        except (OSError, UsageError):
            pass
