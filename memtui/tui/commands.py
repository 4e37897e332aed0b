"""The command palette (ctrl+p): every action the keys offer, and every theme.

Operators who forgot a key search for it here. The entries are the bindings of
the screen the palette was opened on and of the app (memtui.tui.keys: a
binding's tooltip titles its entry), so the palette lists what the keys do and
nothing else; actions that make no sense now (pausing a finished job) are left
out by the same ``check_action`` that hides their key, rather than failing when
picked. Both apps use this provider.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from memtui.tui.keys import documented


class KeyCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        commands: list[tuple[str, str, Callable[[], object]]] = []
        for doc in documented([self.screen, app]):
            if doc.check():
                keys = doc.key_display(app)
                help_text = f"{keys}: {doc.detail}" if doc.detail else keys
                commands.append((doc.title, help_text, partial(app.run_action, doc.action, doc.namespace)))
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


#: The operator TUI's name for it (tests, older imports).
MemtuiCommands = KeyCommands
