"""The command palette (ctrl+p): every action the keys offer, and every theme.

Operators who forgot a key search for it here; actions that make no sense now
(pausing a finished job) are left out rather than failing when picked.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from memtui.tui.app import MemtuiApp

#: (action, title, help) in the order the help screen lists them.
ACTIONS = [
    ("pause", "Pause the job", "p / space: hold after the sub-batch in flight"),
    ("resume", "Resume the job", "p / space"),
    ("cleanup", "Clean up memory now", "c: gc, return freed heap, clear model caches"),
    ("thresholds", "Change memory thresholds…", "t: warning and breaker levels"),
    ("breaker_step(1)", "Raise the breaker level by 0.1 GB", "+"),
    ("breaker_step(-1)", "Lower the breaker level by 0.1 GB", "-"),
    ("batch_limits", "Change batch-size limits…", "b"),
    ("toggle_chart", "Show or hide the memory chart", "g"),
    ("help", "Help: keys and panels", "?"),
    ("request_quit", "Quit (stops after committing the batch in flight)", "q"),
]


class MemtuiCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: MemtuiApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, str, Callable[[], object]]] = []
        for action, title, help_text in ACTIONS:
            name, _, arg = action.partition("(")
            params = (int(arg.rstrip(")")),) if arg else ()
            if app.check_action(name, params):
                commands.append((title, help_text, partial(app.run_action, action)))
        for theme in sorted(app.available_themes):
            marker = " (current)" if theme == app.theme else ""
            commands.append((f"Theme: {theme}{marker}", "switch colors", partial(setattr, app, "theme", theme)))
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
