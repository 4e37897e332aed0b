"""Themes as data: TOML files in ``themes/`` turned into Textual themes at start.

They live inside the package (not a top-level ``themes/``) so ``pip install``
carries them; pyproject declares ``memtui.tui = ["themes/*.toml"]``. A bad file
fails at start with its name, not later when someone picks the theme.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from memtui.errors import ConfigError

THEMES_DIR = Path(__file__).with_name("themes")
DEFAULT_THEME = "memtui-dark"
#: Under NO_COLOR, the theme that reads best without color (Textual then drops the colors).
NO_COLOR_THEME = "memtui-contrast"

_FIELDS = {f.name for f in dataclasses.fields(Theme)}
_COLOR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent",
                 "foreground", "background", "surface", "panel", "boost")


def load_theme(path: Path) -> Theme:
    """One TOML file -> a Theme; ConfigError naming the file and key if anything is off."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"theme file {path}: {exc}") from None
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
