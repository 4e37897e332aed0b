"""Themes as data: TOML files in the top-level ``themes/`` turned into Textual themes at start.

pyproject maps ``themes/`` into the package as ``memtui.themes``, so ``pip
install`` carries them; a source checkout or an editable install reads the
folder itself. ``--theme PATH.toml`` loads an operator's own file. A bad file
fails at start with its name, not later when someone picks the theme.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from memtui.errors import ConfigError
from memtui.memory.settings_file import read_toml_file


def _themes_dir() -> Path:
    """The installed ``memtui.themes`` package, else the checkout's ``themes/`` (editable installs too)."""
    try:
        spec = importlib.util.find_spec("memtui.themes")
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "themes"


THEMES_DIR = _themes_dir()
DEFAULT_THEME = "memtui-dark"
#: Under NO_COLOR, the theme that reads best without color (Textual then drops the colors).
NO_COLOR_THEME = "memtui-contrast"

_FIELDS = {f.name for f in dataclasses.fields(Theme)}
_COLOR_FIELDS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)


def load_theme(path: Path) -> Theme:
    """One TOML file -> a Theme; ConfigError naming the file and key if anything is off."""
    data = read_toml_file(path, "theme file", missing_fix="check --theme")  # bounded, a regular file only
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ConfigError(f"theme file {path}: unknown key(s) {', '.join(unknown)}")
    if not isinstance(data.get("name"), str) or not isinstance(data.get("primary"), str):
        raise ConfigError(f"theme file {path}: 'name' and 'primary' are required strings")
    variables = {str(k): str(v) for k, v in data.pop("variables", {}).items()}
    for key in _COLOR_FIELDS:
        if key in data:
            _check_color(path, key, data[key])
    for key, value in variables.items():
        if not value.startswith("$"):
            _check_color(path, f"variables.{key}", value)
    return Theme(**data, variables=variables)


def _check_color(path: Path, key: str, value: object) -> None:
    try:
        Color.parse(str(value))
    except ColorParseError:
        raise ConfigError(f"theme file {path}: {key} = {value!r} is not a color") from None


def load_themes(directory: Path = THEMES_DIR) -> list[Theme]:
    return [load_theme(path) for path in sorted(directory.glob("*.toml"))]


def is_theme_file(name: str) -> bool:
    """``--theme`` names a file (an operator's own theme) rather than a registered theme."""
    return name.endswith(".toml") or "/" in name
