"""Which face a run gets, decided once: the CLI runs it and the attach entry records it.

The TUI with ``--tui``, or on a terminal (stdin and stdout both) unless ``--headless``; headless
otherwise (a pipe, a file, cron, a detached run). Imports nothing of Textual: it only names the face.
"""

from __future__ import annotations

import sys
from typing import Literal, TextIO

Face = Literal["tui", "headless"]


def choose_face(tui: bool, headless: bool, stdin: TextIO | None = None, stdout: TextIO | None = None) -> Face:
    """``tui``/``headless``: the flags (argparse keeps them exclusive); the streams default to sys's."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    if tui or (not headless and _is_terminal(stdout) and _is_terminal(stdin)):
        return "tui"
    return "headless"


def _is_terminal(stream: TextIO | None) -> bool:
    """A closed or missing stream (a daemon's) is no terminal."""
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False
