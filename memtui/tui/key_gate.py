"""Keys apply one at a time, in the order they were typed, each where the screen is by then.

Textual routes a key by posting it to the focused widget's (or the screen's) queue and reads the
next key at once. Keys that arrive in one burst (a paste, a slow SSH link, a quick operator:
``t0.9<Tab>1.4<Enter>`` in one read) are therefore all routed before the first has done anything:
the ``t`` that opens a dialog has not opened it when the ``0`` is routed, so the ``0`` goes to the
screen behind; and in a form, a priority Enter can apply before the field has taken the characters
typed before it.

``KeyGate`` makes delivery sequential. After handing a key (or a paste) on, it holds the next ones
until that key has landed: the widget it went to, then each parent up to the app, has handled every
message queued before the key's follow-up (so whatever the key set off while bubbling has run); and
while a screen that was pushed is still being mounted. Then it hands on the next one, which Textual
routes to the screen and widget in focus by then. If a key never lands (its widget went away), the
gate opens after ``HOLD_LIMIT_S``: keys may then go astray, but never stay stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from textual import events
from textual.app import App
from textual.dom import DOMNode
from textual.timer import Timer

#: A terminal's typing, as the gate orders it.
TypedEvent = events.Key | events.Paste


class KeyGate:
    #: The longest a key is held for one that has not landed (or a screen that is not yet mounted).
    HOLD_LIMIT_S = 3.0

    def __init__(self, app: App[Any], route: Callable[[TypedEvent], Awaitable[None]]) -> None:
        """``route`` is Textual's own routing (``App.on_event``): priority bindings, then the focus."""
        self._app = app
        self._route = route
        self._held: deque[TypedEvent] = deque()
        self._in_flight: TypedEvent | None = None
        self._opening: set[object] = set()  # screens pushed and not yet mounted
        self._watchdog: Timer | None = None
        self._mounts: set[asyncio.Task[None]] = set()  # kept: the loop holds tasks weakly

    @property
    def is_open(self) -> bool:
        return self._in_flight is None and not self._opening

    @property
    def held(self) -> int:
        return len(self._held)

    async def receive(self, event: TypedEvent) -> None:
        """A key or paste from the terminal: route it now if nothing is pending, else after those before it."""
        self._held.append(event)
        await self._release()

    def screen_pushed(self, mounted: Awaitable[Any]) -> None:
        """Hold keys until the pushed screen is mounted (and its focus set): they are typed for it."""
        token = object()
        self._opening.add(token)

        async def wait() -> None:
            with contextlib.suppress(Exception):  # a screen that fails to mount is Textual's to report
                await mounted
            self._app.call_later(self._opened, token)

        task = asyncio.get_running_loop().create_task(wait(), name="memtui key gate: screen mount")
        self._mounts.add(task)
        task.add_done_callback(self._mounts.discard)

    async def _opened(self, token: object) -> None:
        self._opening.discard(token)
        await self._release(progress=True)

    async def _release(self, *, progress: bool = False) -> None:
        """Route held keys while the gate is open; each one closes it until it has landed."""
        while self._held and self.is_open:
            event = self._held.popleft()
            await self._route(event)
            if event.is_forwarded:  # handed to a widget's queue: wait until it has been handled
                self._in_flight = event
                self._follow(event, self._app.focused or self._app.screen)
        self._watch(progress)

    def _follow(self, event: TypedEvent, node: DOMNode | None) -> None:
        """Queue a check behind ``event`` on ``node``; when it runs, go on to the parent, up to the app."""
        while node is not None:
            if node.call_later(self._reached, event, node):
                return
            node = node.parent  # closed: nothing more will happen there
        self._app.call_later(self._landed, event)

    async def _reached(self, event: TypedEvent, node: DOMNode) -> None:
        if node is self._app:  # the last of its queues: the key and all it set off have been handled
            await self._landed(event)
        else:
            self._follow(event, node.parent)

    async def _landed(self, event: TypedEvent) -> None:
        if event is self._in_flight:
            self._in_flight = None
            await self._release(progress=True)

    def _watch(self, progress: bool) -> None:
        """While keys wait, a timer that opens the gate if nothing lands for too long; none otherwise."""
        if not self._held or self.is_open:
            if self._watchdog is not None:
                self._watchdog.stop()
                self._watchdog = None
        elif self._watchdog is None:
            self._watchdog = self._app.set_timer(self.HOLD_LIMIT_S, self._give_up, name="memtui key gate")
        elif progress:
            self._watchdog.reset()

    async def _give_up(self) -> None:
        self._watchdog = None
        self._in_flight = None
        self._opening.clear()
        await self._release()
