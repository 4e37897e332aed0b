"""What memtui logs before a face takes over, kept so the TUI can show it.

Lines logged while the run is being set up (a level above the memory limit,
thresholds lowered, no run trace, the model's cache) used to reach only the
terminal, under the TUI's alternate screen: the operator saw them after
quitting. ``install`` keeps them (bounded) and still writes warnings to stderr
as Python's last-resort handler did, so a headless run prints what it printed;
``take`` hands them to the face and lets the face's own logging take over.
"""

from __future__ import annotations

import collections
import logging
import sys
from dataclasses import dataclass

from memtui.stdio import write_line

#: At most this many lines are kept (the setup logs a handful).
KEEP = 200


@dataclass(frozen=True)
class EarlyLine:
    at: float  # time.time() when logged
    level: int  # logging.WARNING ...
    text: str

    @property
    def weighty(self) -> bool:
        """A warning the operator must see before the work goes on (the TUI keeps it on screen until dismissed)."""
        return self.level >= logging.WARNING


class _Keeper(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[EarlyLine] = collections.deque(maxlen=KEEP)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not end the run
            text = str(record.msg)
        self.lines.append(EarlyLine(record.created, record.levelno, text))
        if record.levelno >= logging.WARNING:
            write_line(sys.stderr, text)  # what the last-resort handler printed before


_keeper: _Keeper | None = None
_level_before = logging.NOTSET


def install() -> None:
    """Start keeping what the "memtui" logger says (INFO and up); again: start afresh."""
    global _keeper, _level_before
    remove()
    logger = logging.getLogger("memtui")
    _keeper = _Keeper()
    _level_before = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(_keeper)


def is_keeper(handler: logging.Handler) -> bool:
    """The handler ``install`` added (not a face's logging)."""
    return isinstance(handler, _Keeper)


def take() -> list[EarlyLine]:
    """The lines kept so far, oldest first; stops keeping (the face's logging takes over)."""
    lines = list(_keeper.lines) if _keeper is not None else []
    remove()
    return lines


def remove() -> None:
    global _keeper
    if _keeper is not None:
        logger = logging.getLogger("memtui")
        logger.removeHandler(_keeper)
        logger.setLevel(_level_before)
        _keeper = None
