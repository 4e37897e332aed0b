"""Files memtui creates beside the cache or where the user points: never through a planted link.

memtui runs as root on shared servers, often with its cache in a folder other
users can write (a sticky /tmp). Every file it creates, appends to or renames
goes through here: opened with O_NOFOLLOW, owned by us, a regular file, 0600;
temporary files are created with O_EXCL under a random name in the target's
own folder and renamed over the target (a rename replaces a link, it never
writes through it).
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import tempfile
from pathlib import Path

from memtui.errors import MemtuiError, RuntimeFailure, UsageError

PRIVATE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted at the path must not hang the open


class UnsafeFile(UsageError):
    """A file memtui would write is a link, not a regular file, or someone else's (exit 2)."""


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def describe_mode(st: os.stat_result) -> str:
    return f"owner {owner_name(st.st_uid)}, mode {stat.filemode(st.st_mode)}"


#: What the rule refuses: a link, the wrong kind of node, another user's, a file with other names.
LINK, KIND, OWNER, HARD_LINKS = "link", "kind", "owner", "hard links"


def refusal(path: Path, st: os.stat_result, *, folder: bool = False, sole_name: bool = True) -> tuple[str, str] | None:
    """The one rule for a file or folder memtui uses: no link, a regular file (or a folder), ours, one name.

    ``st`` is an lstat of ``path`` or an fstat of an fd opened with O_NOFOLLOW. Returns (what is wrong,
    the words that say it), or None when ``path`` passes. ``sole_name`` False: hard links do not matter
    (a reader: an owner check already refuses another user's file under a name of ours).
    """
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return LINK, f"is a symbolic link (to {target})"
    if not (stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)):
        return KIND, f"is not a {'folder' if folder else 'file'} ({stat.filemode(st.st_mode)})"
    if st.st_uid != os.geteuid():
        return OWNER, f"belongs to another user ({describe_mode(st)})"
    if sole_name and not folder and st.st_nlink > 1:  # planted where fs.protected_hardlinks is off
        return HARD_LINKS, f"has {st.st_nlink} hard links, so writing it would change another file too"
    return None


def _default_fix(problem: str, folder: bool) -> str:
    return {
        LINK: "memtui never writes through links: remove it or pass a real path",
        KIND: "remove it or move it away" if folder else "pass a file path",
        OWNER: f"memtui only writes files of {owner_name(os.geteuid())}: pass a path of your own",
        HARD_LINKS: "remove the other links or pass another path",
    }[problem]


def check_private(
    path: Path,
    st: os.stat_result,
    what: str,
    *,
    folder: bool = False,
    sole_name: bool = True,
    error: type[MemtuiError] = UnsafeFile,
    fix: str | None = None,
) -> None:
    """``refusal`` as one line (``error``, UnsafeFile by default: exit 2): what, where, ``fix`` or the rule's own."""
    found = refusal(path, st, folder=folder, sole_name=sole_name)
    if found is not None:
        problem, words = found
        raise error(f"{what} {path} {words}; {fix or _default_fix(problem, folder)}")


def lstat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def check_existing(path: Path, what: str) -> os.stat_result | None:
    """lstat + check_private; None when the file does not exist."""
    st = lstat_or_none(path)
    if st is not None:
        check_private(path, st, what)
    return st


def tighten(path: Path, st: os.stat_result) -> bool:
    """Make a checked file 0600 (a folder 0700) if its mode is looser; True if it changed."""
    if stat.S_IMODE(st.st_mode) & 0o077 == 0:
        return False
    folder = stat.S_ISDIR(st.st_mode)
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | (os.O_DIRECTORY if folder else 0))
    try:
        os.fchmod(fd, 0o700 if folder else stat.S_IMODE(st.st_mode) & 0o700 | PRIVATE)
    finally:
        os.close(fd)
    return True


def open_private(path: Path, flags: int, what: str, *, create: bool = True) -> int:
    """An fd on ``path`` (created 0600 if missing), refusing links, other owners and non-files.

    The check is on the opened fd, so a file swapped in between a look and the
    open is caught too. The open does not block: a FIFO planted there is refused,
    not waited on forever.
    """
    all_flags = flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, all_flags, PRIVATE)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # O_NOFOLLOW met a link; a FIFO with no reader
            check_existing(path, what)
        raise
    try:
        st = os.fstat(fd)
        check_private(path, st, what)
        os.set_blocking(fd, True)
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, PRIVATE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_exclusive(path: Path) -> bool:
    """Create an empty 0600 file that did not exist (O_EXCL: a planted link fails); False if one exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, PRIVATE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE)  # the umask may have taken bits off; on the fd: a name swapped since is not touched
    finally:
        os.close(fd)
    return True


def write_atomic(path: Path, data: bytes, what: str) -> None:
    """Replace ``path`` with ``data`` all at once: a random O_EXCL temp file in its folder, fsync, rename.

    A reader sees the old or the new content, never half; a link at ``path``
    is replaced, not followed. Raises OSError for the caller to word.
    """
    st = lstat_or_none(path)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {path} is a directory; pass a file path")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through links, hard links or relative parts)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(where: Path | str, doing: str) -> RuntimeFailure:
    return RuntimeFailure(f"disk full while {doing} ({where}); free space there and rerun (what was committed is kept)")


def check_ancestors(path: Path, what: str) -> None:
    """Refuse a folder whose parents another user could rename or replace it in.

    Each folder above ``path`` (links resolved) must belong to root or to us and,
    unless sticky (like /tmp), be writable by nobody else: otherwise its owner or
    a group could swap ``path`` for a folder or link of their own between a check
    and a use.
    """
    me = os.geteuid()
    parent = Path(os.path.realpath(path.parent))
    for folder in (parent, *parent.parents):
        st = os.stat(folder)
        if st.st_uid not in (0, me):
            raise UnsafeFile(
                f"{what} {path} lies in {folder}, which belongs to another user ({describe_mode(st)}); "
                "pass a folder of your own"
            )
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise UnsafeFile(
                f"{what} {path} lies in {folder}, which others can write ({describe_mode(st)}); "
                "pass a folder of your own"
            )
