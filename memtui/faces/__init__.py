"""The faces: hosts that run any Engine (memtui.engine) and show it to an operator.

* ``headless``: one host for any engine: a worker thread, events as log lines,
  progress lines, signals; the per-engine wording comes from ``job`` and
  ``monitor`` (their ``HEADLESS`` parts).
* ``tui``: one ``run_tui(engine, theme)`` that picks the Textual app for the
  engine (memtui.tui.app.MemtuiApp, memtui.tui.monitor_app.MonitorApp); Textual
  loads only there.
* ``job`` and ``monitor``: what differs per engine: summary lines, the
  progress line, which events are printed, how a stop is worded.

Nothing here is imported by an engine: engines know no face.
"""
