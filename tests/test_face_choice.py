"""One rule picks the face (memtui.faces.choice): the CLI runs it, the attach entry records it.

Real terminals (a pty) and real pipes, not mocked isatty.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest

from memtui.attach import commands
from memtui.faces.choice import choose_face


@pytest.fixture
def terminal() -> Iterator[io.TextIOWrapper]:
    main, sub = os.openpty()
    with os.fdopen(sub, "w") as stream:
        yield stream
    os.close(main)


@pytest.fixture
def pipe() -> Iterator[io.TextIOWrapper]:
    r, w = os.pipe()
    with os.fdopen(w, "w") as stream:
        yield stream
    os.close(r)


def test_a_terminal_on_both_ends_gets_the_tui_unless_headless(terminal):
    assert choose_face(False, False, terminal, terminal) == "tui"
    assert choose_face(False, True, terminal, terminal) == "headless"


@pytest.mark.parametrize("which", ["stdin", "stdout"])
def test_a_pipe_on_either_end_is_headless_unless_tui(terminal, pipe, which):
    streams = (pipe, terminal) if which == "stdin" else (terminal, pipe)
    assert choose_face(False, False, *streams) == "headless"
    assert choose_face(True, False, *streams) == "tui"


def test_a_closed_stream_is_no_terminal(terminal):
    closed = io.StringIO()
    closed.close()
    assert choose_face(False, False, closed, terminal) == "headless"


def test_the_cli_and_the_attach_entry_use_the_one_rule():
    """Neither spells the rule again (it once lived in both)."""
    import inspect

    from memtui.cli import wiring

    for module in (wiring, commands):
        source = inspect.getsource(module)
        assert "choose_face(" in source and ".isatty() and sys.stdin.isatty()" not in source
