"""Monitor mode never signals memtui's ancestors, not only its direct parent.

The operator's sshd, tmux server or sudo is a grandparent (or further up) of the memtui they run. A
``--pid`` naming one of them, with a breaker policy that would signal it, must be refused at the one
choke point (``memtui.jobs.monitor.intervene``): a real process tree bash -> bash -> memtui, where the
outer bash is the target and records every signal it gets. A SIGSTOP cannot be caught: had memtui sent
one, the outer bash would sit stopped and the test sees state T (and continues it before failing).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import REPO, memtui_env

#: Breaker levels any process is above: the breaker opens on the first sample.
TINY = "--max-memory 1MB --warning-memory 0.5MB --config /dev/null"

#: The grandparent: traps what memtui might send, runs an inner bash that runs memtui on the outer's pid.
#: ``; true`` keeps the inner bash alive as memtui's parent (bash would exec a lone command in its place).
OUTER = r"""
trap 'echo TERM >> "$LOG"' TERM
trap 'echo HUP >> "$LOG"' HUP
trap 'echo USR1 >> "$LOG"' USR1
echo "$$" > "$DIR/outer.pid"
bash -c '"$PYTHON" -m memtui run --mode monitor --pid "$1" --headless --monitor-interval 0.05 \
    --duration 0.6 --on-breaker "$POLICY" '"$TINY"' > "$DIR/report.json" 2> "$DIR/stderr.txt"
    echo "$?" > "$DIR/rc"; true' inner "$$"
"""


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize("policy", ["term", "stop"])
def test_a_grandparent_pid_is_watched_but_never_signalled(tmp_path: Path, policy: str):
    log = tmp_path / "signals"
    log.touch()
    env = memtui_env(LOG=str(log), DIR=str(tmp_path), PYTHON=sys.executable, POLICY=policy, TINY=TINY)
    outer = subprocess.Popen(["bash", "-c", OUTER], env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while outer.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                if state(outer.pid) == "T":
                    pytest.fail(f"memtui stopped its grandparent (pid {outer.pid})")
            time.sleep(0.05)
        assert outer.returncode == 0, f"the grandparent ended with {outer.returncode} (or never: timed out)"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(outer.pid, signal.SIGCONT)
            outer.kill()
        outer.wait(timeout=10)
    grandparent = int((tmp_path / "outer.pid").read_text())
    assert log.read_text() == "", "a signal reached memtui's grandparent"
    stderr = (tmp_path / "stderr.txt").read_text()
    assert (tmp_path / "rc").read_text().strip() == "0", stderr
    (target,) = json.loads((tmp_path / "report.json").read_text())["targets"]
    assert target["pid"] == grandparent and target["breaker_trips"] == 1, "the breaker did want to act"
    (action,) = target["actions"]
    assert action["ok"] is False and action["by"] == "breaker"
    assert re.fullmatch(rf"refused: pid {grandparent} is an ancestor of memtui \(bash\)", action["error"])
    assert f"Could not send SIG{'TERM' if policy == 'term' else 'STOP'} to pid {grandparent}" in stderr
