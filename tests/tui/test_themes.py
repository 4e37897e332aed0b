"""Themes are data files, registered at start; colors come only from theme variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import memtui.tui
from memtui.errors import ConfigError, UsageError
from memtui.tui.app import MemtuiApp
from memtui.tui.theming import THEMES_DIR, load_theme, load_themes

TUI_DIR = Path(memtui.tui.__file__).parent


def test_three_themes_ship_as_package_data():
    themes = {t.name: t for t in load_themes()}
    assert set(themes) >= {"memtui-dark", "memtui-light", "memtui-contrast"}
    assert themes["memtui-dark"].dark and not themes["memtui-light"].dark
    assert themes["memtui-contrast"].ansi, "the low-color theme uses the terminal's 16 ANSI colors"
    assert all(p.parent == THEMES_DIR and p.suffix == ".toml" for p in THEMES_DIR.glob("*"))


def test_a_broken_theme_file_names_itself(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nprimary = "not-a-color"\n')
    with pytest.raises(ConfigError, match="bad.toml.*primary"):
        load_theme(bad)
    bad.write_text('name = "x"\nprimary = "#fff"\nsparkle = true\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_theme(bad)


def test_theme_choice_default_flag_unknown_and_no_color(make_rig, monkeypatch: pytest.MonkeyPatch):
    rig = make_rig(domains=2)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert MemtuiApp(rig.runner).theme == "memtui-dark"
    assert MemtuiApp(rig.runner, theme="memtui-light").theme == "memtui-light"
    with pytest.raises(UsageError, match="unknown theme 'nope'.*memtui-contrast"):
        MemtuiApp(rig.runner, theme="nope")
    monkeypatch.setenv("NO_COLOR", "1")
    app = MemtuiApp(rig.runner)
    assert app.no_color and app.theme == "memtui-contrast"
    # Native ANSI, so Textual strips color (NoColor) instead of greying "default" colors to black on black.
    assert app.native_ansi_color and any(type(f).__name__ == "NoColor" for f in app._filters)


@pytest.mark.parametrize("theme", ["memtui-light", "memtui-contrast"])
async def test_every_theme_draws_every_panel(make_rig, theme: str):
    rig = make_rig(domains=6)
    app = MemtuiApp(rig.runner, theme=theme)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(300):
            if app.report is not None:
                break
            await pilot.pause(0.02)
        app.tick(force_chart=True)
        await pilot.pause()
        assert app.dashboard.chart.display and app.is_running
        await pilot.press("q")
    assert app.return_value["status"] == "success"


HEX = re.compile(r"""["']#[0-9a-fA-F]{3,8}["']""")
NAMED = re.compile(
    r"""["'](?:bold |italic )?(?:bright_)?(?:red|green|yellow|blue|magenta|cyan|white|black|grey\d*)"""
    r"""(?: on \w+)?["']"""
)


def test_no_hard_coded_colors_in_python():
    """Colors live in the themes and app.tcss (as $variables); Python only names theme variables."""
    offenders = []
    for path in TUI_DIR.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if HEX.search(line) or NAMED.search(line) or "rgb(" in line or "Color(" in line:
                offenders.append(f"{path.relative_to(TUI_DIR)}:{number}: {line.strip()}")
    assert offenders == []


def test_tcss_uses_only_theme_variables_for_colors():
    css = (TUI_DIR / "app.tcss").read_text()
    for line in css.splitlines():
        if re.search(r"^\s*([\w-]*color|background|border(-top|-bottom|-left|-right)?)\s*:", line):
            assert "$" in line or "none" in line, f"not a theme variable: {line.strip()}"


REPO = Path(__file__).resolve().parents[2]


def test_the_theme_files_live_in_the_top_level_themes_folder():
    assert THEMES_DIR.resolve() == (REPO / "themes").resolve() or (THEMES_DIR / "dark.toml").exists()
    assert sorted(p.name for p in (REPO / "themes").glob("*.toml")) == ["contrast.toml", "dark.toml", "light.toml"]


def test_pyproject_lists_every_package_on_disk():
    """The packages are listed by hand (a mapped folder defeats discovery): the list must not drift."""
    import tomllib

    from setuptools import find_packages

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert listed == set(find_packages(str(REPO), include=["memtui*"])) | {"memtui.themes"}


@pytest.mark.slow
def test_a_built_wheel_carries_the_themes(tmp_path: Path):
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("memtui-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"memtui/themes/dark.toml", "memtui/themes/light.toml", "memtui/themes/contrast.toml"} <= set(names)
    assert "memtui/tui/app.tcss" in names


def test_theme_path_loads_an_operators_own_file(make_rig, tmp_path: Path):
    own = tmp_path / "night.toml"
    own.write_text('name = "night-shift"\nprimary = "#ff8800"\ndark = true\n')
    app = MemtuiApp(make_rig(domains=2).runner, theme=str(own))
    assert app.theme == "night-shift"
    assert app.current_theme.primary == "#ff8800"


def test_a_bad_theme_path_fails_before_any_work(tmp_path: Path):
    from tests.support.cli import memtui

    cache = tmp_path / "c.sqlite"
    result = memtui("run", "--headless", "--cache", cache, "--theme", tmp_path / "missing.toml", timeout=60)
    assert result.returncode == 2 and "missing.toml" in result.stderr and "Traceback" not in result.stderr
    assert not cache.exists()
