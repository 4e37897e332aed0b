"""The attached viewer: the same dashboard as the in-process TUI, over a RemoteEngine.

``AttachedMemtuiApp`` and ``AttachedMonitorApp`` are the usual apps hosting a
memtui.attach.client.RemoteEngine (duck-typed: memtui.attach launches these apps, so
nothing here imports it), with what differs for a run that lives in
another process: ``d`` detaches (the run goes on); ``q`` asks: stop the run
(it commits first), detach, or cancel; SIGTERM, SIGINT and a hangup of the
viewer's terminal detach. When the run ends while attached the dashboard shows
its report (``q`` then leaves with the run's exit code); when the connection
is lost without a report, the viewer says the run ended abnormally and exits.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static
from textual.worker import Worker, WorkerState

from memtui.tui.app import MemtuiApp
from memtui.tui.engine_app import detach_from_terminal
from memtui.tui.monitor_app import MonitorApp

#: After the run was lost, how long the viewer shows why before it exits.
LOST_EXIT_S = 1.5
#: After its terminal went away, how long the viewer may take to leave before it leaves at once.
HANGUP_EXIT_S = 5.0


def _leave_soon() -> None:
    time.sleep(HANGUP_EXIT_S)
    os._exit(0)  # detached: the run goes on


class AttachQuitScreen(ModalScreen[str]):
    """q on an attached run: "stop" (commit first), "detach", or "cancel"."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s,y", "answer('stop')", "Stop the run"),
        Binding("d", "answer('detach')", "Detach"),
        Binding("n,escape,c", "answer('cancel')", "Cancel"),
    ]

    def __init__(self, detail: str = "") -> None:
        super().__init__()
        self._detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Stop the run, or detach and leave it running?", classes="dialog-title")
            yield Static(
                "Stopping finishes and commits the batch in flight, writes the report and ends the run. "
                "Detaching leaves it running: 'memtui attach' comes back to it."
                + (f"\n{self._detail}" if self._detail else ""),
                classes="dialog-hint",
                markup=False,
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop the run (s)", id="stop", variant="error", compact=True)
                yield Button("Detach (d)", id="detach", variant="primary", compact=True)
                yield Button("Cancel (n)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(str(event.button.id))

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)


class _Attached:
    """What both attached apps add (a mixin before the app class: its methods win)."""

    remote: Any  # a memtui.attach.client.RemoteEngine (not imported: attach launches this app)
    detached: bool
    lost: str | None
    attached_to: str | None

    def _attached_init(self, engine: Any) -> None:
        self.remote = engine
        self.attached_to = f"run {engine.run_id}"  # the header names it: this screen is a viewer
        self.detached = False
        self.lost = None  # why the run ended abnormally, if it did

    def tick(self, **options: Any) -> None:
        """Redraw only for a new frame from the run (2 a second) or new events, not on every poll."""
        fresh = self.remote.snapshot() is not self.last or self._events.wait(0)  # type: ignore[attr-defined]
        if fresh or options.get("force_chart"):
            super().tick(**options)  # type: ignore[misc]

    def action_detach(self) -> None:
        self.detached = True
        self.remote.detach()
        self.exit(None)  # type: ignore[attr-defined]

    def action_request_quit(self) -> None:
        if not self.job_running:  # type: ignore[attr-defined]
            if self.lost:
                self.exit(None)  # type: ignore[attr-defined]
            else:
                self._exit_with_report()  # type: ignore[attr-defined]
            return
        if self.quitting:  # type: ignore[attr-defined]
            self.notify("Already stopping: the run commits the batch in flight", timeout=3)  # type: ignore[attr-defined]
            return
        if isinstance(self.screen, AttachQuitScreen):  # type: ignore[attr-defined]
            return
        self.push_screen(  # type: ignore[attr-defined]
            AttachQuitScreen(f"Run {self.remote.run_id}, pid {self.remote.hello.get('pid')}."),
            self._attach_quit_answered,
        )

    def action_interrupt(self) -> None:
        if isinstance(self.screen, AttachQuitScreen):  # type: ignore[attr-defined]
            self.screen.dismiss("detach")  # type: ignore[attr-defined]
        else:
            self.action_request_quit()

    def _attach_quit_answered(self, answer: str | None) -> None:
        if answer == "stop":
            self._stop_engine()  # type: ignore[attr-defined]
        elif answer == "detach":
            self.action_detach()

    def _quit_on_signal(self) -> None:
        """SIGTERM or SIGINT to the viewer: it leaves; the run goes on."""
        self.action_detach()

    def _on_hangup(self, _signum: int, _frame: object) -> None:
        """The viewer's terminal went away: detach (the run goes on) and leave."""
        if self.detached:
            return
        detach_from_terminal()
        self.detached = True
        self.remote.detach()
        self._signal_loop.call_soon_threadsafe(self.exit, None)  # type: ignore[attr-defined]
        # Nobody is watching: whatever the UI does on its way out, the viewer is gone within seconds.
        threading.Thread(target=_leave_soon, name="memtui-viewer-hangup", daemon=True).start()

    # Textual calls each class's handler along the MRO: this one runs before EngineApp's.
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker is not self._worker or event.state is not WorkerState.ERROR:  # type: ignore[attr-defined]
            return
        if not (self.remote.lost or self.remote.detached):
            return  # not the run going away (RemoteEngine.run raises RunLost only then): EngineApp reports a crash
        event.prevent_default()  # not a crash of this app: the run went away
        if self.detached:
            return
        self.lost = str(worker.error)
        self._redraw_last()  # the header says RUN LOST now, not the last frame's RUNNING
        self.job_log.add("ERROR", "error", self.lost)  # type: ignore[attr-defined]
        self.notify(self.lost, severity="error", timeout=LOST_EXIT_S + 5)  # type: ignore[attr-defined]
        self.set_timer(LOST_EXIT_S, lambda: self.exit(None))  # type: ignore[attr-defined]

    def _redraw_last(self) -> None:
        """Show the last frame again, through the usual watchers (they read ``lost``)."""
        screen = getattr(self, "dashboard", None)
        if screen is not None:
            screen.snapshot = screen.snapshot
        else:
            setattr(self, "last", getattr(self, "last", None))  # noqa: B010 - MonitorApp's reactive, re-set

    def on_unmount(self) -> None:
        """Whatever ends the viewer (even a crash) leaves the run running: EngineApp's unmount, which
        stops its engine, then reaches a detached RemoteEngine."""
        if self.report is None:  # type: ignore[attr-defined]
            self.detached = True
            self.remote.detach()


#: d exists only in a viewer (a local run has nothing to detach from); its tooltip puts it in help and palette.
DETACH = Binding(
    "d", "detach", "Detach", tooltip="Detach: leave this viewer; the run goes on ('memtui attach' comes back)"
)


class AttachedMemtuiApp(_Attached, MemtuiApp):
    TITLE = "memtui (attached)"
    BINDINGS: ClassVar[list[BindingType]] = [DETACH]

    def __init__(self, engine: Any, **options: Any) -> None:
        self._attached_init(engine)
        super().__init__(engine, **options)


class AttachedMonitorApp(_Attached, MonitorApp):
    TITLE = "memtui monitor (attached)"
    BINDINGS: ClassVar[list[BindingType]] = [DETACH]

    def __init__(self, engine: Any, **options: Any) -> None:
        self._attached_init(engine)
        super().__init__(engine, **options)


def attached_app_class(engine: Any) -> type[AttachedMemtuiApp] | type[AttachedMonitorApp]:
    return AttachedMonitorApp if engine.kind == "monitor" else AttachedMemtuiApp
