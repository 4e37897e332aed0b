"""The input must stay what the scan read: a change under a run is caught, never reported as success.

The cache job reads its input twice (memtui.jobs.cache): the scan counts the
domains and the responses, the work embeds them. A file truncated, appended,
replaced or rewritten in place between the two (a producer still writing it,
a ``cp`` over it, an editor's save) would make the work see other bytes than
the scan counted: with a cut file the run used to end ``success`` with 4 of
22 domains. So the scan keeps, per domain, a running digest of every line it
read, and the file's identity (device, inode, size, modification and change
times); the work compares both at each domain, before the domain is embedded,
and the identity again once the last batch is committed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from memtui.errors import InputError

#: What a line longer than the reader keeps (memtui.jobs.input) counts as in the digest.
TOO_LONG = b"\0too long\0"


class InputChanged(InputError):
    """The input file changed while the run read it (exit 2); the domains committed before are kept."""


@dataclass(frozen=True)
class FileIdentity:
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def change_to(self, now: FileIdentity | None) -> str | None:
        """How the file became ``now`` (None: it did not change), in the operator's words."""
        if now is None:
            return "was removed"
        if (now.dev, now.ino) != (self.dev, self.ino):
            return "was replaced by another file"
        if now.size < self.size:
            return f"was truncated from {self.size} to {now.size} bytes"
        if now.size > self.size:
            return f"grew from {self.size} to {now.size} bytes"
        if (now.mtime_ns, now.ctime_ns) != (self.mtime_ns, self.ctime_ns):
            return "was rewritten in place"
        return None


def identity(path: Path) -> FileIdentity | None:
    try:
        return FileIdentity.of(os.stat(path))
    except OSError:
        return None


class LineDigest:
    """A running digest of the lines read; ``mark()`` is its value at a domain's end."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)

    def update(self, raw: bytes | bytearray | None) -> None:
        self._hash.update(TOO_LONG if raw is None else raw)

    def mark(self) -> bytes:
        return self._hash.copy().digest()


class InputWatch:
    """The scan's view of the input (its identity, one digest per domain), checked by the work's pass.

    ``name`` is what the user typed, ``path`` what is read (a pipe's private
    spool, which nobody else can change, is checked the same way).
    """

    def __init__(self, name: str, path: Path, *, units: str = "domains") -> None:
        """``units``: what the messages call the checked parts (a user's job checks "pieces" of items)."""
        self.name = name
        self.path = path
        self.units = units
        self.before = identity(path)
        self._marks: list[bytes] = []
        self._scanned: FileIdentity | None = None

    # -- the scan --------------------------------------------------------------------------------
    def scanned_domain(self, digest: LineDigest) -> None:
        self._marks.append(digest.mark())

    def scan_done(self) -> None:
        """The file must not change under the scan either (its totals would be of no one file)."""
        self._scanned = identity(self.path)
        if self.before is not None:
            self._raise_if_changed(self.before, "while it was scanned", domains=None)

    # -- the work --------------------------------------------------------------------------------
    def check_domain(self, index: int, digest: LineDigest, domain: str) -> None:
        """Before domain number ``index`` (0-based) is embedded: the same bytes as the scan's, the same file."""
        self.check_file(done=index)
        if index >= len(self._marks):
            raise self._changed(f"has more {self.units} than the scan found ({domain!r} is new)", done=index)
        if digest.mark() != self._marks[index]:
            raise self._changed(f"holds other lines than the scan read, at {self.units[:-1]} {domain!r}", done=index)

    def check_file(self, *, done: int | None = None) -> None:
        if self._scanned is not None:
            self._raise_if_changed(self._scanned, "during the run", domains=done)

    def check_read_error(self, exc: InputError, done: int) -> InputError:
        """A read error in the work's pass (the scan read the whole file): the file changed, if it did."""
        if self._scanned is not None:
            how = self._scanned.change_to(identity(self.path))
            if how is not None:
                return self._changed(how, done=done)
        return exc

    def check_end(self, domains_read: int) -> None:
        """The work read every domain the scan found (a cut file yields fewer)."""
        self.check_file(done=domains_read)
        if domains_read < len(self._marks):
            raise self._changed(
                f"ends after {domains_read} of the {len(self._marks)} {self.units} the scan found", done=domains_read
            )

    # -- words -----------------------------------------------------------------------------------
    def _raise_if_changed(self, before: FileIdentity, when: str, *, domains: int | None) -> None:
        how = before.change_to(identity(self.path))
        if how is not None:
            raise self._changed(how, when=when, done=domains)

    def _changed(self, how: str, *, when: str = "during the run", done: int | None) -> InputChanged:
        if done is None:  # the scan: nothing ran
            return InputChanged(
                f"input {self.name} {how} {when}; nothing was embedded: rerun once the file is complete"
            )
        return InputChanged(
            f"input {self.name} {how} {when} (after {done} of {len(self._marks)} {self.units} were read); "
            "what was committed is kept: rerun once the file is complete and the rest is done"
        )
