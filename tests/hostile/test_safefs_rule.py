"""safefs's one rule for a file or folder memtui uses, on real nodes another user could plant.

The store, the reader, the model cache, the run registry and the trace all check through
``safefs.refusal``/``check_private``; each of them has its own end-to-end attacker tests
(test_file_safety, test_export_outputs, test_model_cache, test_run_registry). Here the rule
itself: what it refuses, how it words it, and that a caller's fix and error class are used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memtui.errors import StoreError
from memtui.safefs import HARD_LINKS, KIND, LINK, OWNER, UnsafeFile, check_private, refusal
from tests.support.hostile import plant_file, plant_link, require_root


def lstat(path: Path) -> os.stat_result:
    return os.lstat(path)


def test_a_file_and_a_folder_of_ours_pass(tmp_path):
    mine = tmp_path / "mine"
    mine.write_bytes(b"x")
    assert refusal(mine, lstat(mine)) is None
    assert refusal(tmp_path, lstat(tmp_path), folder=True) is None


def test_each_planted_node_is_refused_for_its_own_reason(tmp_path):
    require_root()
    theirs = plant_file(tmp_path / "theirs", b"x")
    link = plant_link(tmp_path / "link", theirs)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    mine = tmp_path / "mine"
    mine.write_bytes(b"x")
    os.link(mine, tmp_path / "second-name")
    problems = {
        "link": refusal(link, lstat(link)),
        "fifo": refusal(fifo, lstat(fifo)),
        "folder as a file": refusal(tmp_path, lstat(tmp_path)),
        "file as a folder": refusal(mine, lstat(mine), folder=True),
        "theirs": refusal(theirs, lstat(theirs)),
        "hard link": refusal(mine, lstat(mine)),
    }
    assert {k: v and v[0] for k, v in problems.items()} == {
        "link": LINK,
        "fifo": KIND,
        "folder as a file": KIND,
        "file as a folder": KIND,
        "theirs": OWNER,
        "hard link": HARD_LINKS,
    }
    assert problems["link"][1] == f"is a symbolic link (to {theirs})"
    assert "owner nobody" in problems["theirs"][1]
    assert refusal(mine, lstat(mine), sole_name=False) is None  # a reader: a second name of ours does not matter


def test_the_line_names_what_and_where_with_the_rules_fix_or_the_callers(tmp_path):
    require_root()
    theirs = plant_file(tmp_path / "theirs", b"x")
    with pytest.raises(UnsafeFile) as default:
        check_private(theirs, lstat(theirs), "cache")
    assert str(default.value).startswith(f"cache {theirs} belongs to another user (owner nobody")
    assert "pass a path of your own" in str(default.value)
    with pytest.raises(StoreError) as custom:
        check_private(theirs, lstat(theirs), "cache", error=StoreError, fix="copy it and pass the copy")
    assert str(custom.value).endswith("; copy it and pass the copy") and "\n" not in str(custom.value)
