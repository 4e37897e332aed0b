"""Where the input comes from: a regular file, or a pipe read once into a private, nameless spool.

The cache job reads its input twice (a scan for totals and bad lines, then the
work), which a pipe, ``/dev/stdin`` or a FIFO cannot give: the second read
finds nothing and the run would call itself a success with nothing embedded.
Operators feed jobs from ``zcat`` and ``jq``, so such an input is copied once,
as it arrives, into an unnamed temporary file (O_TMPFILE: no name another user
could plant a link at, gone when memtui exits) and read from there.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from memtui.errors import InputError
from memtui.safefs import disk_full, is_disk_full

STDIN_NAMES = frozenset({"-", "/dev/stdin"})
CHUNK = 1 << 20


@dataclass
class InputSource:
    """``path`` is what the reader opens (the spool for a pipe); ``name`` is what the user typed."""

    name: str
    path: Path
    spooled_bytes: int | None = None
    _spool: IO[bytes] | None = None

    @classmethod
    def open(cls, name: str | os.PathLike[str]) -> InputSource:
        name = str(name)
        if name in STDIN_NAMES:
            if sys.stdin is None or sys.stdin.isatty():
                raise InputError(
                    f"--input {name} reads standard input, which is a terminal; "
                    "pipe the data in (zcat in.jsonl.gz | memtui run --input -) or pass a file"
                )
            return cls._spooled(name, os.dup(sys.stdin.fileno()))
        try:
            st = os.stat(name)
        except FileNotFoundError:
            raise InputError(f"no input file at {name}; check the path") from None
        except OSError as exc:
            raise InputError(f"cannot open {name}: {exc.strerror or exc}; check the path") from None
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            return cls(name, Path(name))  # the reader words a directory itself
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            try:
                fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # a FIFO waits here for a writer
            except OSError as exc:
                raise InputError(f"cannot open {name}: {exc.strerror or exc}; check the path") from None
            return cls._spooled(name, fd)
        raise InputError(
            f"{name} is not a file or a pipe ({stat.filemode(st.st_mode)}); "
            "pass a .jsonl or .jsonl.gz file, or pipe the data to --input -"
        )

    @classmethod
    def _spooled(cls, name: str, fd: int) -> InputSource:
        # O_TMPFILE / unlinked at once: no name to attack; closed by close()
        spool = tempfile.TemporaryFile(prefix="memtui-input-")  # noqa: SIM115
        try:
            with os.fdopen(fd, "rb", buffering=0) as pipe:
                shutil.copyfileobj(pipe, spool, CHUNK)
            spool.flush()
        except OSError as exc:
            spool.close()
            if is_disk_full(exc):
                raise disk_full(
                    tempfile.gettempdir(), f"keeping a copy of the piped input {name} (set TMPDIR to a bigger disk)"
                ) from None
            raise InputError(f"reading {name} failed ({exc.strerror or exc}); check what feeds the pipe") from None
        except BaseException:
            spool.close()
            raise
        size = spool.tell()
        # /proc/self/fd/N opens a new file description at offset 0: each pass reads the spool from its start.
        return cls(name, Path(f"/proc/self/fd/{spool.fileno()}"), size, spool)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
