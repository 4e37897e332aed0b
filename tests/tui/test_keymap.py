"""Keys remapped in the config file's [keys] table: the key acts, the footer, the help and the palette show
it; a bad table is one line at the start (exit 2), before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from memtui import cli
from memtui.errors import ConfigError
from memtui.tui.app import MemtuiApp
from memtui.tui.keymap import load_keymap
from memtui.tui.screens.help import HelpScreen

from .conftest import screen_lines, wait_for


def test_the_keys_table_is_read_and_checked(tmp_path: Path):
    config = tmp_path / "memtui.toml"
    config.write_text('[memory]\nmax-memory = 1.5\n\n[keys]\nquit = "ctrl+x"\npause = "f5, p"\n')
    assert load_keymap(config) == {"quit": "ctrl+x", "pause": "f5,p"}
    config.write_text('[keys]\nexplode = "e"\n')
    with pytest.raises(ConfigError, match="'explode' is not a key memtui binds"):
        load_keymap(config)
    config.write_text('[keys]\nquit = ""\n')
    with pytest.raises(ConfigError, match="is not a key list"):
        load_keymap(config)
    assert load_keymap(tmp_path / "none.toml") == {}


def test_a_bad_keys_table_is_a_usage_error_before_any_work(tmp_path: Path, capsys):
    config = tmp_path / "memtui.toml"
    config.write_text('[keys]\nexplode = "e"\n')
    code = cli.main(["run", "--config", str(config), "--cache", str(tmp_path / "c.sqlite"), "--limit", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "is not a key memtui binds" in err and err.count("\n") == 1, err
    assert not (tmp_path / "c.sqlite").exists()


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_remapped_keys_act_and_the_footer_help_and_palette_follow(size, make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner, keymap={"pause": "f5", "help": "f1"})
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        await wait_for(pilot, lambda: "f5 Pause" in screen_lines(app)[-1].replace("F5", "f5"), what="the footer")
        await pilot.press("p")  # the old key no longer pauses
        await pilot.pause(0.2)
        assert not rig.runner.snapshot().paused
        await pilot.press("f5")
        await wait_for(pilot, lambda: rig.runner.snapshot().paused, what="f5 to pause")
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="f1 to open the help")
        rows = dict(app.screen.key_rows())
        assert any(keys.lower() == "f5" and "Pause the job" in text for keys, text in rows.items()), rows
        assert not any(keys.startswith("p") and "Pause the job" in text for keys, text in rows.items()), rows
        await pilot.press("escape")
        await pilot.press("q", "y")


def test_attach_reads_the_keys_table_before_looking_for_a_run(tmp_path: Path, capsys, monkeypatch):
    """A viewer gets the operator's keys as the run's own TUI does: a bad table is one line, exit 2, first."""
    monkeypatch.setenv("MEMTUI_RUN_DIR", str(tmp_path / "runs"))  # no run: a missed check would say so instead
    config = tmp_path / "memtui.toml"
    config.write_text('[keys]\nexplode = "e"\n')
    code = cli.main(["attach", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and "is not a key memtui binds" in err and err.count("\n") == 1, err


def test_attach_hands_the_keys_table_to_the_viewer(tmp_path: Path, monkeypatch):
    from types import SimpleNamespace

    from memtui.attach import client, commands
    from memtui.tui import attached

    config = tmp_path / "memtui.toml"
    config.write_text('[keys]\npause = "f5"\n')
    seen: dict[str, object] = {}

    class Viewer:  # records what the command gives the attached app (the app itself is tested in test_attach.py)
        MOUSE = False
        lost = None

        def __init__(self, engine, **options):
            seen.update(options)

        def run(self, mouse):
            return None

    class Engine:
        report = None

        def __init__(self, socket):
            self.kind = "job"

    entry = SimpleNamespace(id="abc", socket=tmp_path / "x.sock")  # a run found by 'ls' (tested in test_attach.py)
    monkeypatch.setattr(commands, "pick", lambda run_id: entry)
    monkeypatch.setattr(client, "RemoteEngine", Engine)
    monkeypatch.setattr(attached, "attached_app_class", lambda engine: Viewer)
    assert cli.main(["attach", "--config", str(config)]) == 0
    assert seen["keymap"] == {"pause": "f5"}
