"""The per-user run registry: one small JSON file per attachable run, beside its socket.

The folder is private (0700, ours, not a link): ``$MEMTUI_RUN_DIR``, else
``$XDG_RUNTIME_DIR/memtui``, else ``$XDG_CACHE_HOME/memtui/runs``
(``~/.cache/memtui/runs``). Each run ``ID`` owns ``ID.json`` (its entry, 0600,
written atomically), ``ID.sock`` (its Unix socket, 0600) and, when detached,
``ID.log`` and ``ID.report.json``. ``entries()`` drops the entries of runs that
died (the pid gone, or reused by another process: its start time differs).

Another user may control that folder (a 0777 ``$MEMTUI_RUN_DIR``, an
``$XDG_RUNTIME_DIR`` kept by ``su`` or ``sudo -E``), so every verb checks it
as ``run`` does (``open_runs_dir``), an entry is untrusted data (``RunEntry.read``
skips a malformed one with one warning line; its socket is always the run's own
name in that folder), and memtui deletes only what it verifies it created:
ours, the right file type, by name inside the folder it opened (``remove``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import psutil

from memtui.errors import UsageError
from memtui.safefs import check_ancestors, check_private, describe_mode, refusal, write_atomic

__all__ = [
    "RunEntry",
    "ensure_runs_dir",
    "entries",
    "find",
    "new_run_id",
    "open_runs_dir",
    "process_since_boot",
    "process_start",
    "remove",
    "runs_dir",
]

#: A run id as ``new_run_id`` makes it, or a user's own: never a path.
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: An entry is a few hundred bytes; a bigger file is not one of ours.
ENTRY_MAX_BYTES = 64 * 1024
#: An entry without ``since_boot`` names its process by wall-clock start: the kernel's boot time is whole
#: seconds and is restepped with the clock, so one process reads up to a second apart.
WALL_CLOCK_SLACK_S = 2.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_warned: set[str] = set()


def runs_dir() -> Path:
    if os.environ.get("MEMTUI_RUN_DIR"):
        return Path(os.environ["MEMTUI_RUN_DIR"]).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _ours(Path(runtime)):  # not another user's, kept by su or sudo -E
        return Path(runtime) / "memtui"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "memtui" / "runs"


def _ours(folder: Path) -> bool:
    try:
        st = os.stat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def _folder_error(path: Path, exc: OSError) -> UsageError:
    return UsageError(
        f"cannot use the run folder {path}: {exc.strerror or exc}; set MEMTUI_RUN_DIR to a folder of yours"
    )


def _check_folder(path: Path, fd: int) -> None:
    """Ours and a folder (the fd was opened without following a link); tightened to 0700 if looser."""
    st = os.fstat(fd)
    check_private(path, st, "the run folder", folder=True, fix="remove it or set MEMTUI_RUN_DIR to a folder of yours")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.fchmod(fd, 0o700)


@contextlib.contextmanager
def open_runs_dir(*, create: bool) -> Iterator[tuple[Path, int | None]]:
    """The run folder and an fd on it, checked (not a link, ours, made 0700); fd None if it does not exist
    and ``create`` is false. Names inside it are reached through the fd: a folder swapped since is not used."""
    path = runs_dir()
    if create:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            pass  # a file or a link there: the open below words it
        except OSError as exc:
            raise _folder_error(path, exc) from None
    try:
        check_ancestors(path, "the run folder")  # nobody else can swap it for another between here and a use
    except FileNotFoundError:
        pass  # no folder above: none to list (the open below says so)
    except OSError as exc:
        raise _folder_error(path, exc) from None
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        if create:
            raise _folder_error(path, FileNotFoundError(errno.ENOENT, "no such folder")) from None
        yield path, None
        return
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.lexists(path):
            raise UsageError(
                f"the run folder {path} is not a folder (a link or a file); remove it or set MEMTUI_RUN_DIR"
            ) from None
        raise _folder_error(path, exc) from None
    try:
        try:
            _check_folder(path, fd)
        except OSError as exc:
            raise _folder_error(path, exc) from None
        yield path, fd
    finally:
        os.close(fd)


def ensure_runs_dir() -> Path:
    """The run folder, created 0700; refused (exit 2) if it is a link, not a folder, or someone else's."""
    with open_runs_dir(create=True) as (path, _fd):
        return path


def new_run_id() -> str:
    return secrets.token_hex(3)


def process_start(pid: int) -> float | None:
    """When ``pid`` started, as a wall-clock time (shown to people; not an identity: see below)."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def process_since_boot(pid: int) -> float | None:
    """When ``pid`` started, in seconds since boot: the kernel's own count, fixed for the process's life.

    The wall-clock start moves whenever the kernel's boot time (whole seconds, derived from the clock) is
    restepped, so two readings of one process can differ by a second: an identity needs this one.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            raw = stat_file.read(4096)
        return int(raw.rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def warn_once(key: str, message: str) -> None:
    """One warning line per bad entry per command (several verbs read the registry more than once)."""
    if key not in _warned:
        _warned.add(key)
        print(f"memtui: warning: {message}", file=sys.stderr)


class BadEntry(ValueError):
    """An entry that is not one memtui wrote: skipped, never trusted, never deleted."""


def _number(data: dict[str, Any], name: str, *, integer: bool = False, low: float = 0.0, high: float = 1e12) -> Any:
    """A field that must be a number (a whole one with ``integer``) in [low, high]: JSON allows any."""
    value = data.get(name, 0.0)
    numeric = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not numeric or not low <= value <= high:  # NaN fails too
        what = "a whole number" if integer else "a number"
        raise BadEntry(f"{name} is {value!r:.40}, not {what} from {low:g} to {high:g}")
    return value


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
    since_boot: float = 0.0  # the process's start in seconds since boot (0: an entry written before it)

    @property
    def path(self) -> Path:
        return Path(self.socket).with_name(f"{self.id}.json")

    def alive(self) -> bool:
        """The run's process still exists and is the same one (not a reused pid)."""
        try:
            if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.Error:
            return False
        since_boot = process_since_boot(self.pid)
        if self.since_boot > 0 and since_boot is not None:
            return abs(since_boot - self.since_boot) < 0.001
        start = process_start(self.pid)  # an older entry, or no /proc: the wall clock, with its second of drift
        return start is not None and abs(start - self.start_time) < WALL_CLOCK_SLACK_S

    def write(self) -> None:
        write_atomic(self.path, (json.dumps(asdict(self), indent=2) + "\n").encode(), "run entry")

    @classmethod
    def parse(cls, name: str, raw: bytes, folder: Path) -> RunEntry:
        """The entry ``name`` (``ID.json``) of ``folder``, checked field by field; BadEntry says why not."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadEntry(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BadEntry(f"a JSON {type(data).__name__}, not an object")
        run_id = data.get("id")
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or name != f"{run_id}.json":
            raise BadEntry(f"its id {run_id!r} is not its file name's")
        values: dict[str, Any] = {"id": run_id}
        values["pid"] = _number(data, "pid", integer=True, low=1, high=(1 << 22))  # the kernel's pid_max limit
        for name_ in ("start_time", "started_at", "since_boot"):
            values[name_] = float(_number(data, name_))
        for text in ("mode", "input", "cache", "socket", "log", "report", "face"):
            value = data.get(text, "")
            if not isinstance(value, str):
                raise BadEntry(f"{text} is {value!r}, not a string")
            values[text] = value
        own = folder / f"{run_id}.sock"
        given = Path(values["socket"])
        if given.name != own.name or not _same_folder(given.parent, folder):
            raise BadEntry(f"its socket {values['socket']!r} is not {own}")
        values["socket"] = str(own)  # the run's own name in the folder we checked, whatever the text said
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> RunEntry | None:
        """The entry at ``path`` in the checked run folder; None (with one warning line) if it is not one."""
        with open_runs_dir(create=False) as (folder, fd):
            if fd is None or not _same_folder(path.parent, folder):
                return None
            return _read_entry(folder, fd, path.name)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a == b or os.path.samefile(a, b)
    except OSError:
        return False


def _read_entry(folder: Path, dir_fd: int, name: str) -> RunEntry | None:
    where = folder / name
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None  # the run ended between the listing and here
    except OSError as exc:
        warn_once(str(where), f"skipped the run entry {where}: {exc.strerror or exc} (a link is never followed)")
        return None
    try:
        st = os.fstat(fd)
        if refusal(where, st, sole_name=False) is not None:
            warn_once(
                str(where),
                f"skipped the run entry {where}: not a file of yours ({describe_mode(st)}); "
                "memtui neither trusts nor removes it",
            )
            return None
        raw = os.read(fd, ENTRY_MAX_BYTES + 1)
    except OSError as exc:
        warn_once(str(where), f"skipped the run entry {where}: {exc.strerror or exc}")
        return None
    finally:
        os.close(fd)
    try:
        if len(raw) > ENTRY_MAX_BYTES:
            raise BadEntry(f"over {ENTRY_MAX_BYTES} bytes")
        return RunEntry.parse(name, raw, folder)
    except BadEntry as exc:
        warn_once(str(where), f"skipped the run entry {where}: {exc}; remove it if no run uses it")
        return None


def _remove_own(dir_fd: int, name: str, is_type: Any) -> None:
    """Unlink ``name`` in the opened folder only if it is ours and of the type memtui made there."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if st.st_uid != os.geteuid() or not is_type(st.st_mode):
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def remove(entry: RunEntry) -> None:
    """Remove a run's entry and socket: by the run's own names, in the checked run folder, if they are ours."""
    if not RUN_ID.fullmatch(entry.id):
        return
    with open_runs_dir(create=False) as (folder, fd):
        if fd is None or not _same_folder(Path(entry.socket).parent, folder):
            return
        _remove_own(fd, f"{entry.id}.json", stat.S_ISREG)
        _remove_own(fd, f"{entry.id}.sock", stat.S_ISSOCK)


def entries(*, clean: bool = True) -> list[RunEntry]:
    """The running runs, oldest first; the entries of runs that died are removed (``clean``)."""
    with open_runs_dir(create=False) as (folder, fd):
        if fd is None:
            return []
        names = sorted(n for n in os.listdir(fd) if n.endswith(".json") and not n.endswith(".report.json"))
        found = []
        for name in names:
            entry = _read_entry(folder, fd, name)
            if entry is None:
                continue
            if entry.alive():
                found.append(entry)
            elif clean:
                _remove_own(fd, f"{entry.id}.json", stat.S_ISREG)
                _remove_own(fd, f"{entry.id}.sock", stat.S_ISSOCK)
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
