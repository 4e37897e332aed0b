"""The cache must still be at its path: a commit to a file whose folder was removed is a commit to nowhere.

SQLite writes through the descriptors it holds, so a cache whose folder is
removed (``rm -rf`` of a build directory) or renamed mid-run keeps taking
commits without an error, and the run used to end ``success`` with every
byte of them gone with the unlinked inode. After each commit and at the end,
the path must still name the file the run opened (device and inode).
"""

from __future__ import annotations

import os
from pathlib import Path

from memtui.errors import RuntimeFailure

_FDS = Path("/proc/self/fd")


class CachePresence:
    def __init__(self, path: Path) -> None:
        self.path = path
        st = os.stat(path)
        self._id = (st.st_dev, st.st_ino)

    def check(self) -> None:
        """Raise RuntimeFailure (exit 1) when the path no longer names the open cache."""
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == self._id:
            return
        links = self._open_links()
        if links == 0 or links is None:
            raise RuntimeFailure(
                f"cache {self.path} was deleted during the run (its file or folder was removed): "
                "the work committed to it is lost with it; rerun with --cache in a folder that stays"
            )
        raise RuntimeFailure(
            f"cache {self.path} was moved or replaced during the run: the work committed is in the moved "
            f"file, not at {self.path}; move it back (with its -wal) and rerun to finish"
        )

    def _open_links(self) -> int | None:
        """The link count of the cache file as this process holds it open (SQLite's descriptor), if found."""
        try:
            fds = list(_FDS.iterdir())
        except OSError:
            return None
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == self._id:
                return st.st_nlink
        return None
