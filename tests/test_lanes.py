"""The suite's lanes are true: what the fast lane selects cannot start the real CLI, a cluster or the model.

``tests/support/lanes.py`` marks tests from what they use; these check that it finds each kind of use,
and that ``make test-fast``'s selection leaves out the files that are all real runs.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import lanes
from tests.support.cli import REPO, memtui, memtui_env


def _through_a_helper() -> None:
    memtui("--version")


def _spawns_by_hand() -> None:
    subprocess.run([sys.executable, "-m", "memtui", "--version"], check=False)


def _a_cluster() -> None:
    from distributed import LocalCluster

    LocalCluster(n_workers=1)


def _pure() -> None:
    assert sorted([2, 1]) == [1, 2]


class _Driver:
    def go(self) -> None:
        _through_a_helper()


def _through_a_class() -> None:
    _Driver().go()


def _nested() -> None:
    def inner() -> None:
        _spawns_by_hand()

    inner()


@pytest.mark.parametrize(
    ("func", "slow"),
    [
        (_through_a_helper, True),
        (_spawns_by_hand, True),
        (_a_cluster, True),
        (_through_a_class, True),
        (_nested, True),
        (_pure, False),
        (memtui_env, False),  # builds an environment: starts nothing
    ],
)
def test_the_classifier_follows_what_a_test_uses(func, slow):
    assert lanes._Reach().obj(func) is slow


@pytest.mark.slow
def test_the_fast_lane_selects_no_real_run():
    """Collected as ``make test-fast`` does: the all-real-runs files are out, the unit files are in."""
    # marked by hand (attach, cli) and only by what they use (the cluster connection, the limits)
    heavy = [
        "tests/test_attach.py",
        "tests/test_cli.py",
        "tests/hostile/test_cluster_connection.py",
        "tests/test_limits.py",
    ]
    light = ["tests/memory/test_breaker.py", "tests/test_wire.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *heavy, *light],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**memtui_env(), lanes.LANE_ENV: "fast"},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert ids and all(line.startswith(tuple(light)) for line in ids), ids
    assert {line.split("::")[0] for line in ids} == set(light)
