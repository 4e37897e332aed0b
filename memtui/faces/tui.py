"""The TUI host: ``run_tui(engine, theme)`` runs the Textual app for any Engine until the operator quits.

The app for each kind of engine (memtui.tui.app.MemtuiApp for the embedding
job, memtui.tui.monitor_app.MonitorApp for monitor mode) is an EngineApp: it
runs the engine in a thread worker, polls its snapshots and steers it by its
commands. Textual is imported here only when ``run_tui`` is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from memtui.engine import Engine
from memtui.errors import MemtuiError
from memtui.records import Report

if TYPE_CHECKING:
    from memtui.early_log import EarlyLine
    from memtui.tui.engine_app import EngineApp

#: The app for each kind of engine: (module, class), imported only when that engine runs.
APPS = {"job": ("memtui.tui.app", "MemtuiApp"), "monitor": ("memtui.tui.monitor_app", "MonitorApp")}


def app_class(engine: Engine) -> type[EngineApp]:
    """The EngineApp subclass that shows ``engine.kind``."""
    try:
        module, name = APPS[engine.kind]
    except KeyError:
        raise ValueError(f"no TUI for a {engine.kind!r} engine") from None
    cls: type[EngineApp] = getattr(importlib.import_module(module), name)
    return cls


def run_tui(
    engine: Engine,
    *,
    theme: str | None = None,
    early: Sequence[EarlyLine] = (),
    keymap: Mapping[str, str] | None = None,
) -> Report:
    """Run the engine's app until the operator quits; returns the engine's report (the one headless returns).

    ``early``: what was logged before the app started (memtui.early_log), for its log and its alerts.
    """
    cls = app_class(engine)
    app = cls(engine, theme=theme, handle_signals=True, early=early, keymap=keymap)
    # The job's app runs without the mouse: every action has a key, and without mouse tracking the
    # terminal's own selection works, so an operator can copy a path or a log line out of an SSH session.
    report = app.run(mouse=cls.MOUSE)
    if report is None:
        report = app.report or engine.snapshot().report
    if report is None:
        raise MemtuiError(
            f"the {cls.FACE_NOUN} ended before the {cls.WORK_NOUN} could report; rerun with --headless to see why"
        )
    return report
