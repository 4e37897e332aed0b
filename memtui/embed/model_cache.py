"""memtui's model cache: ONNX exports it made itself, kept private, loaded only as they were written.

memtui runs as root; the files of the model cache become the model whose vectors are committed under
the backend's tag. So the cache follows the rules of the files beside the embedding cache
(``memtui.safefs``), plus one: an export is loaded only if it matches its manifest.

* The root (``$MEMTUI_MODEL_CACHE``, else ``$XDG_CACHE_HOME/memtui/models``, else
  ``~/.cache/memtui/models``), each export folder in it and each file are no links, ours, private:
  a looser mode of ours is tightened, another user's is refused in one line (exit 2) naming the path,
  its owner and the fix.
* Every folder above the root (links resolved) belongs to root or us and nobody else may write it
  unless sticky, as /tmp (``safefs.check_ancestors``): nobody else can rename a folder of the chain
  away and put theirs in its place between the check and the load.
* An export is written into a private temporary folder beside its final name and renamed into place
  with its manifest (``export.json``: size and sha256 of each file) written last. Before loading, the
  file's size and sha256 (streamed, never more than the manifest's size) must match the manifest; a
  missing manifest (a half-written or old export) or a mismatch makes the caller export again into a
  fresh folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtui.errors import RuntimeFailure
from memtui.safefs import check_ancestors, check_private, open_private, owner_name, refusal, tighten

MANIFEST = "export.json"
#: A manifest is a few hundred bytes; anything this big is not one of ours.
MANIFEST_MAX_BYTES = 1 << 20
HASH_CHUNK = 1 << 20
#: A temporary export folder older than this was left by an export that died (the export's own timeout).
STALE_TEMP_S = 1800
_WHAT = "model cache"


def cache_root() -> Path:
    """$MEMTUI_MODEL_CACHE, else $XDG_CACHE_HOME/memtui/models (~/.cache/memtui/models)."""
    if os.environ.get("MEMTUI_MODEL_CACHE"):
        return Path(os.environ["MEMTUI_MODEL_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "memtui" / "models"


# -- folders ----------------------------------------------------------------------------------------


def check_folder(path: Path, what: str = _WHAT) -> os.stat_result:
    """A folder of the model cache by safefs's rule (no link, a folder, ours); a looser mode of ours is made 0700."""
    st = os.lstat(path)
    me = owner_name(os.geteuid())
    check_private(
        path,
        st,
        what,
        folder=True,
        fix=f"memtui loads models only from folders of {me}: remove it or set MEMTUI_MODEL_CACHE to a folder of {me}",
    )
    tighten(path, st)
    return st


def ensure_root(root: Path | None = None) -> Path:
    """The model cache's root, created 0700 if missing, its chain checked (UnsafeFile otherwise).

    The folders above it follow safefs's rule (``check_ancestors``: root's or ours, nobody else may
    write them unless sticky): checked above the first missing one before creating anything, and
    again once the whole chain exists.
    """
    root = Path(os.path.abspath(root or cache_root()))
    first_missing = root
    while not os.path.lexists(first_missing.parent) and first_missing.parent != first_missing:
        first_missing = first_missing.parent
    check_ancestors(first_missing, _WHAT if first_missing == root else f"{_WHAT} {root}: its folder")
    if not os.path.lexists(root):
        root.mkdir(parents=True, mode=0o700, exist_ok=True)
    check_ancestors(root, _WHAT)
    check_folder(root)
    return root


def sweep_stale_temps(root: Path, name: str, now: float | None = None) -> None:
    """Remove temporary folders of ``name`` left by exports that died (never loaded, but they hold disk)."""
    now = time.time() if now is None else now
    for entry in root.iterdir():
        if not entry.name.startswith(f".{name}."):
            continue
        try:
            st = os.lstat(entry)
        except FileNotFoundError:
            continue
        if refusal(entry, st, folder=True) is None and now - st.st_mtime > STALE_TEMP_S:
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def export_lock(root: Path, name: str, timeout_s: float = STALE_TEMP_S) -> Iterator[None]:
    """One export of ``name`` at a time (runs, cluster workers): ``flock`` on ``<root>/<name>.lock``.

    The waiter then finds the export made and verified instead of retiring it under the maker's feet.
    Waits at most ``timeout_s`` (an export's own timeout); the lock dies with its holder.
    """
    fd = open_private(root / f"{name}.lock", os.O_RDWR, f"{_WHAT} lock")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeFailure(
                        f"another process has been exporting into {root / name} for over {timeout_s:.0f}s; "
                        "wait for it or stop it"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def retire(folder: Path) -> None:
    """Move a checked export folder of ours out of the way (a rename), then delete it."""
    check_folder(folder)
    aside = folder.with_name(f".{folder.name}.retired-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)  # rmtree never follows links inside


# -- files ------------------------------------------------------------------------------------------


def _open_checked(path: Path) -> tuple[int, os.stat_result]:
    """An fd on a file of the cache by safefs's rule (no link, a regular file, ours), its mode tightened to 0600."""
    fd = open_private(path, os.O_RDONLY, f"{_WHAT} file", create=False)
    return fd, os.fstat(fd)


def sha256_of(path: Path, limit: int | None = None) -> tuple[str, int]:
    """sha256 and size of a checked file, streamed in 1 MiB reads, never past ``limit`` + 1 bytes."""
    fd, _st = _open_checked(path)
    h = hashlib.sha256()
    size = 0
    try:
        while limit is None or size <= limit:
            chunk = os.read(fd, HASH_CHUNK if limit is None else min(HASH_CHUNK, limit + 1 - size))
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return h.hexdigest(), size


def manifest_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of each file of a finished export (the manifest's ``files``)."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(os.listdir(folder)):
        if name != MANIFEST:
            digest, size = sha256_of(folder / name)
            out[name] = {"size": size, "sha256": digest}
    return out


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The export's manifest (checked, bounded); None if missing or not one of ours (an old export)."""
    try:
        fd, st = _open_checked(folder / MANIFEST)
    except FileNotFoundError:
        return None
    try:
        if st.st_size > MANIFEST_MAX_BYTES:
            return None
        data = os.read(fd, MANIFEST_MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


@dataclass(frozen=True)
class Verdict:
    """What the export folder holds for one file: ``path`` when it may be loaded, else why not."""

    path: Path | None
    reason: str = ""


def verify(folder: Path, name: str) -> Verdict:
    """Whether ``folder/name`` is what the export wrote: raises UnsafeFile for links and other owners."""
    if not os.path.lexists(folder):
        return Verdict(None, "not exported yet")
    check_folder(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        return Verdict(None, f"{folder} has no manifest ({MANIFEST}): a half-written or older export")
    entry = manifest["files"].get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get("size"), int):
        return Verdict(None, f"{folder} has no {name} in its manifest")
    path = folder / name
    try:
        digest, size = sha256_of(path, limit=entry["size"])
    except FileNotFoundError:
        return Verdict(None, f"{path} is missing")
    if size != entry["size"] or digest != entry.get("sha256"):
        return Verdict(None, f"{path} does not match its export manifest (size {size}, sha256 {digest[:12]}...)")
    return Verdict(path)
