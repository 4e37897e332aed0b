"""Keys remapped in the config file's ``[keys]`` table, as posting does: ``quit = "ctrl+q"``, ``pause = "p,f5"``.

Each name is a binding's id (one name for the bindings that share a key: ``pause``
is pause and resume, ``log`` is l's log, report and memory); the value is the keys,
comma-separated, in Textual's names. Textual's keymap moves the bindings, so the
footer follows, and the help and the palette read the keys from the app
(memtui.tui.keys). Read before any work (a bad table is a usage error, exit 2).
Pure: no Textual here, the CLI reads it without loading the TUI.
"""

from __future__ import annotations

import re
from pathlib import Path

from memtui.errors import ConfigError
from memtui.memory.settings_file import read_toml_file

#: Every name a [keys] table may use: the dashboard's and the monitor's binding ids.
REMAPPABLE = (
    "pause",
    "cleanup",
    "thresholds",
    "breaker_up",
    "breaker_down",
    "batch",
    "chart",
    "log",
    "dismiss",
    "help",
    "quit",
)
#: A key as Textual names it: a letter, a digit, a name (f5, space, question_mark), with modifiers (ctrl+q).
_KEY = re.compile(r"^(?:(?:ctrl|shift|alt|meta|super)\+)*[a-z0-9_]+$|^.$")


def load_keymap(path: Path | None) -> dict[str, str]:
    """The ``[keys]`` table of the config file (empty without one); ConfigError naming what is wrong."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        table = read_toml_file(Path(path)).get("keys", {})  # regular, UTF-8, at most 1 MiB, never blocks
    except ConfigError:
        return {}  # the memory settings' reader reports a broken file, in its own words
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: 'keys' must be a table ([keys])")
    keymap: dict[str, str] = {}
    for name, value in table.items():
        if name not in REMAPPABLE:
            raise ConfigError(
                f"config file {path}: [keys] {name!r} is not a key memtui binds; use one of: " + ", ".join(REMAPPABLE)
            )
        keys = [key.strip() for key in str(value).split(",")] if isinstance(value, str) else []
        if not keys or not all(key and _KEY.match(key) for key in keys):
            raise ConfigError(
                f'config file {path}: [keys] {name} = {value!r} is not a key list; write e.g. "ctrl+q" or "p,f5"'
            )
        keymap[name] = ",".join(keys)
    return keymap
