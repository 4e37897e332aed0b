"""The key gate on a bare app: a key that moves the focus sends the keys typed after it, in the same
burst, to the widget it focused; a key that never lands holds the next ones for HOLD_LIMIT_S at most
(then they flow again)."""

from __future__ import annotations

import asyncio

from textual import events
from textual.app import App, ComposeResult
from textual.widget import Widget

from memtui.tui.key_gate import KeyGate

from .conftest import wait_for


class Recorder(Widget, can_focus=True):
    """Records the keys it gets; ``n`` focuses the next recorder (in its own handler, as a widget
    would); a key in ``stuck`` never finishes being handled (until ``unstick``)."""

    def __init__(self, id: str) -> None:
        super().__init__(id=id)
        self.got: list[str] = []
        self.stuck: set[str] = set()
        self.unstick = asyncio.Event()

    async def on_key(self, event: events.Key) -> None:
        event.stop()
        self.got.append(event.key)
        if event.key == "n":
            await asyncio.sleep(0.01)  # slower than the app reads keys
            self.screen.focus_next()
        elif event.key in self.stuck:
            await self.unstick.wait()


class Gated(App):
    """Wired to the gate as memtui's EngineApp is."""

    def __init__(self) -> None:
        super().__init__()
        self.keys = KeyGate(self, route=super().on_event)

    def compose(self) -> ComposeResult:
        yield Recorder("first")
        yield Recorder("second")

    def on_mount(self) -> None:
        self.query_one("#first").focus()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            await self.keys.receive(event)
        else:
            await super().on_event(event)


def burst(app: App, keys: str) -> None:
    for ch in keys:
        app.post_message(events.Key(ch, ch))


async def test_keys_after_one_that_moves_the_focus_go_where_it_moved_it():
    app = Gated()
    async with app.run_test() as pilot:
        first, second = app.query_one("#first", Recorder), app.query_one("#second", Recorder)
        burst(app, "an12")
        await wait_for(pilot, lambda: len(first.got) + len(second.got) == 4, what="every key")
        assert (first.got, second.got) == (["a", "n"], ["1", "2"])
        await wait_for(pilot, lambda: app.keys.is_open and not app.keys.held, what="the last key to land")


async def test_a_key_that_never_lands_holds_the_next_ones_for_the_hold_limit_at_most(monkeypatch):
    monkeypatch.setattr(KeyGate, "HOLD_LIMIT_S", 0.3)
    app = Gated()
    async with app.run_test() as pilot:
        recorder = app.query_one("#first", Recorder)
        recorder.stuck.add("x")
        burst(app, "xyz")
        await asyncio.sleep(0.1)  # not Pilot's pause: it waits for every widget, the stuck one too
        assert recorder.got == ["x"] and app.keys.held == 2, "held behind the key being handled"
        for _ in range(250):
            if not app.keys.held:
                break
            await asyncio.sleep(0.02)
        assert not app.keys.held, "the gate gave up waiting"
        recorder.unstick.set()
        await wait_for(pilot, lambda: recorder.got == ["x", "y", "z"], what="the held keys, in order")
