"""Reading a settings file the user named (``--config``, ``$MEMTUI_CONFIG``, a ``--theme PATH.toml``): bounded.

Every settings file memtui reads goes through ``read_toml_file``: a regular
file only (a FIFO would hang the read forever, a device would never end), at
most ``MAX_BYTES``, UTF-8 (a bad byte is named with its offset), valid TOML.
Each refusal is one ConfigError line (exit 2) that says what is wrong and how
to fix it. The open never blocks: a FIFO at the path is refused, not waited on.
``/dev/null`` (or a node like it) reads as an empty file: the usual "no settings".
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from memtui.errors import ConfigError

#: The largest settings file memtui reads (a real one is a few hundred bytes).
MAX_BYTES = 1 << 20

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def read_toml_file(path: Path, what: str = "config file", *, missing_fix: str = "check the path") -> dict[str, Any]:
    """The TOML table in ``path``; ConfigError (exit 2) naming ``what`` and ``path`` for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; {missing_fix}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be opened ({exc.strerror or exc}); check its permissions") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat(os.devnull).st_rdev:
            return {}  # MEMTUI_CONFIG=/dev/null: the usual way to say "no settings file"
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file ({stat.filemode(st.st_mode)}); pass a TOML file")
        if st.st_size > MAX_BYTES:
            raise ConfigError(f"{what} {path} is {st.st_size} bytes, over the {MAX_BYTES} limit; pass a TOML file")
        try:
            data = b""
            while len(data) <= MAX_BYTES:  # bounded even if the file grows while it is read
                chunk = os.read(fd, MAX_BYTES + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise ConfigError(f"{what} {path} cannot be read ({exc.strerror or exc}); check the file") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{what} {path} is over the {MAX_BYTES} byte limit; pass a TOML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML ({exc}); fix the file") from None
