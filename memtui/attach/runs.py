"""The per-user run registry: one small JSON file per attachable run, beside its socket.

The folder is private (0700, ours, not a link): ``$MEMTUI_RUN_DIR``, else
``$XDG_RUNTIME_DIR/memtui``, else ``$XDG_CACHE_HOME/memtui/runs``
(``~/.cache/memtui/runs``). Each run ``ID`` owns ``ID.json`` (its entry, 0600,
written atomically), ``ID.sock`` (its Unix socket, 0600) and, when detached,
``ID.log`` and ``ID.report.json``. ``entries()`` drops the entries of runs that
died (the pid gone, or reused by another process: its start time differs).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import psutil

from memtui.errors import UsageError
from memtui.safefs import describe_mode, write_atomic

__all__ = ["RunEntry", "ensure_runs_dir", "entries", "find", "new_run_id", "process_start", "remove", "runs_dir"]


def runs_dir() -> Path:
    if os.environ.get("MEMTUI_RUN_DIR"):
        return Path(os.environ["MEMTUI_RUN_DIR"]).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "memtui"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "memtui" / "runs"


def ensure_runs_dir() -> Path:
    """The run folder, created 0700; refused (exit 2) if it is a link, not a folder, or someone else's."""
    path = runs_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"the run folder {path} is not a folder ({stat.filemode(st.st_mode)}); remove it or set MEMTUI_RUN_DIR"
        )
    if st.st_uid != os.geteuid():
        raise UsageError(f"the run folder {path} belongs to another user ({describe_mode(st)}); set MEMTUI_RUN_DIR")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def new_run_id() -> str:
    return secrets.token_hex(3)


def process_start(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@dataclass(frozen=True)
class RunEntry:
    id: str
    pid: int
    start_time: float
    mode: str
    input: str
    cache: str
    socket: str
    log: str = ""
    report: str = ""
    started_at: float = 0.0
    face: str = ""  # "tui" or "headless": a TUI keeps its report on screen after the run ends

    @property
    def path(self) -> Path:
        return Path(self.socket).with_name(f"{self.id}.json")

    def alive(self) -> bool:
        """The run's process still exists and is the same one (not a reused pid)."""
        start = process_start(self.pid)
        if start is None:
            return False
        try:
            if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.Error:
            return False
        return abs(start - self.start_time) < 1.0

    def write(self) -> None:
        write_atomic(self.path, (json.dumps(asdict(self), indent=2) + "\n").encode(), "run entry")

    @classmethod
    def read(cls, path: Path) -> RunEntry | None:
        try:
            data = json.loads(path.read_text())
            names = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in names})
        except (OSError, ValueError, TypeError):
            return None


def remove(entry: RunEntry) -> None:
    for path in (entry.path, Path(entry.socket)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def entries(*, clean: bool = True) -> list[RunEntry]:
    """The running runs, oldest first; the entries of runs that died are removed (``clean``)."""
    folder = runs_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        if path.name.endswith(".report.json"):
            continue
        entry = RunEntry.read(path)
        if entry is None:
            continue
        if entry.alive():
            found.append(entry)
        elif clean:
            remove(entry)
    return sorted(found, key=lambda e: e.started_at)


def find(run_id: str | None) -> RunEntry:
    """The run ``run_id`` (a unique prefix will do); with None, the only run. UsageError otherwise."""
    running = entries()
    if not running:
        raise UsageError("no memtui run is running (start one with 'memtui run ... --detach')")
    if run_id is None:
        if len(running) > 1:
            raise UsageError(
                f"{len(running)} runs are running ({', '.join(e.id for e in running)}); "
                "name one ('memtui ls' lists them)"
            )
        return running[0]
    matches = [e for e in running if e.id == run_id] or [e for e in running if e.id.startswith(run_id)]
    if len(matches) != 1:
        what = "no run" if not matches else f"{len(matches)} runs"
        raise UsageError(f"{what} with id {run_id!r}; running: {', '.join(e.id for e in running)}")
    return matches[0]
