"""What the keys do, read from the bindings themselves: the help screen and the command palette list these.

Each memtui binding says what it does once, in its ``tooltip``: "Title: what it
does" (the title alone is the palette's entry; the whole line is the help
screen's). A binding without a tooltip is documented by the first binding of the
same action (q's line covers the monitor's ctrl+c); one that is neither is
listed nowhere, and tests/tui/test_keys.py fails for any such binding shown in
the footer. So a new key cannot be forgotten in the help or the palette.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from textual.actions import parse
from textual.app import App
from textual.binding import Binding, BindingType
from textual.dom import DOMNode


@dataclass(frozen=True)
class KeyDoc:
    """One action and every key bound to it, on the node (screen or app) that binds it."""

    namespace: DOMNode
    action: str
    keys: tuple[Binding, ...]  # one per key, as Textual expands "p,space"
    tooltip: str

    @property
    def title(self) -> str:
        return self.tooltip.partition(": ")[0]

    @property
    def detail(self) -> str:
        return self.tooltip.partition(": ")[2]

    def key_display(self, app: App) -> str:
        """The keys as the footer shows them ("p  space", "?", "^c"), after the config file's [keys]."""
        keys = self.keys
        remapped = app._keymap.get(keys[0].id or "") if keys else None  # Textual's keymap (App.set_keymap)
        if remapped:
            keys = tuple(Binding(key.strip(), self.action) for key in remapped.split(","))
        return "  ".join(dict.fromkeys(app.get_key_display(binding) for binding in keys))

    def check(self) -> bool | None:
        """The namespace's ``check_action``: True offered, None greyed out, False hidden."""
        _, name, parameters = parse(self.action)
        return self.namespace.check_action(name, parameters)


def own_bindings(node: DOMNode) -> list[Binding]:
    """The BINDINGS memtui's classes declare on ``node`` (not Textual's own), base classes first."""
    found: list[BindingType] = []
    for cls in reversed(type(node).__mro__):
        if not cls.__module__.startswith("textual"):
            found += cls.__dict__.get("BINDINGS", [])
    return [binding if isinstance(binding, Binding) else Binding(*binding) for binding in found]


def documented(nodes: Iterable[DOMNode]) -> list[KeyDoc]:
    """Every documented action of these nodes (a screen, then the app), in binding order."""
    docs: dict[tuple[int, str], KeyDoc] = {}
    for node in nodes:
        for binding in own_bindings(node):
            keys = tuple(Binding.make_bindings([binding]))
            slot = (id(node), binding.action)
            if slot in docs:
                doc = docs[slot]
                docs[slot] = KeyDoc(node, doc.action, doc.keys + keys, doc.tooltip or binding.tooltip)
            elif binding.tooltip:
                docs[slot] = KeyDoc(node, binding.action, keys, binding.tooltip)
    return list(docs.values())


def undocumented(nodes: Sequence[DOMNode]) -> list[Binding]:
    """Bindings the help and the palette would miss: none may be shown in the footer."""
    covered = {(id(doc.namespace), doc.action) for doc in documented(nodes)}
    return [binding for node in nodes for binding in own_bindings(node) if (id(node), binding.action) not in covered]
