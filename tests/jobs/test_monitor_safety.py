"""Monitor mode must not signal what it must not: real processes, the real CLI, the real signal path.

Every test that could, if memtui were wrong, signal something that matters is
arranged so that the "something" is a process the test owns: a wrapper that is
memtui's parent, or pid 1 of a fresh pid namespace (``unshare``). The real pid 1
and the test runner's own ancestors are never a target here.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memtui.jobs.monitor.targets import find_matching, memtui_lineage
from tests.support.cli import REPO, memtui, memtui_env, popen_memtui

#: Breaker levels any process is above: the breaker opens on the first sample.
TINY = ("--max-memory", "1MB", "--warning-memory", "0.5MB", "--config", os.devnull)

NOBODY = 65534
as_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root to start a process as another user (uid 65534)")


def state(pid: int) -> str:
    """The kernel's one-letter state: T when stopped, S sleeping, Z zombie."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


@contextlib.contextmanager
def started(cmd: list[str], **kw):
    proc = subprocess.Popen(cmd, **kw)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(timeout=10)


def sleeper(*, uid: int | None = None, token: str | None = None):
    """A real process doing nothing for a minute; as another user with ``uid``; ``token`` in its command line."""
    # With a token, sleep runs under that name (argv[0]): any user can run it, and its command line matches.
    return started(
        [token or "sleep", "60"], executable="sleep", preexec_fn=(lambda: os.setuid(uid)) if uid is not None else None
    )


def report_of(out: subprocess.CompletedProcess[str]) -> dict:
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def only_target(report: dict) -> dict:
    (target,) = report["targets"]
    return target


# -- A4: an invalid --match regex is a usage error ----------------------------------------------------


def test_an_invalid_regex_is_exit_2_with_one_line_naming_pattern_and_reason():
    out = memtui("run", "--mode", "monitor", "--match", "(", "--headless", timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "memtui: error: --match '(': not a valid regular expression (missing ), unterminated subpattern at "
        "position 0); escape special characters with a backslash (\\( \\[ \\.) or put them in brackets ([(])"
    ]


def test_an_invalid_regex_is_refused_even_with_a_pid_to_watch():
    with sleeper() as target:
        out = memtui(
            "run",
            "--mode",
            "monitor",
            "--pid",
            str(target.pid),
            "--match",
            "a[",
            "--headless",
            "--duration",
            "5",
            timeout=60,
        )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(
        "memtui: error: --match 'a[': not a valid regular expression (unterminated character set at position 1)"
    )


# -- A3: --match never picks memtui's lineage, nor (by default) other users' processes ----------------


def test_match_picks_neither_memtui_nor_the_shell_that_started_it():
    """memtui's own command line and its parent shell's both contain the pattern; only the sibling is picked."""
    token = f"memtui-safety-{time.monotonic_ns()}"
    with sleeper(token=token) as target:
        cmd = (
            f"{sys.executable} -m memtui run --mode monitor --match {token} --headless --duration 0.3 "
            f"--monitor-interval 0.1; exit $?"
        )
        out = subprocess.run(
            ["sh", "-c", cmd],
            capture_output=True,
            text=True,
            timeout=60,
            env=memtui_env(),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
        )
    assert out.returncode == 0, out.stderr
    assert [t["pid"] for t in report_of(out)["targets"]] == [target.pid]


def test_match_never_picks_memtuis_own_children():
    """A process memtui started (a resource tracker, say) is never a target, even when it matches."""
    token = f"memtui-safety-{time.monotonic_ns()}"
    with sleeper(token=token) as own_child:  # a child of this process, which stands in for memtui
        assert own_child.pid in memtui_lineage()
        assert find_matching(token, children=False, all_users=True) == []


@as_root
def test_match_takes_only_my_processes_unless_all_users():
    token = f"memtui-safety-{time.monotonic_ns()}"
    with sleeper(uid=NOBODY, token=token) as theirs:
        out = memtui("run", "--mode", "monitor", "--match", token, "--headless", "--duration", "0.3", timeout=60)
        assert out.returncode == 2
        assert out.stderr.splitlines() == [
            f"memtui: error: no process matches '{token}' among the processes of user root (--all-users for "
            f"everyone's); check with: pgrep -af {token}"
        ]
        with sleeper(token=token) as mine:
            out = memtui("run", "--mode", "monitor", "--match", token, "--headless", "--duration", "0.3", timeout=60)
            assert out.returncode == 0, out.stderr
            assert [t["pid"] for t in report_of(out)["targets"]] == [mine.pid]
            out = memtui(
                "run",
                "--mode",
                "monitor",
                "--match",
                token,
                "--all-users",
                "--headless",
                "--duration",
                "0.3",
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert sorted(t["pid"] for t in report_of(out)["targets"]) == sorted([mine.pid, theirs.pid])


# -- A1/A5: never init, memtui itself or its ancestors, even when asked for explicitly -------------------

#: memtui's parent: starts memtui on itself (argv: what to add), waits, and says whether a signal reached it.
PARENT = textwrap.dedent("""
    import json, os, signal, subprocess, sys
    got = []
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, lambda n, f: got.append(signal.Signals(n).name))
    target = "1" if sys.argv[1] == "init" else str(os.getpid())
    out = subprocess.run([sys.executable, "-m", "memtui", "run", "--mode", "monitor", "--pid", target, "--headless",
                          "--monitor-interval", "0.05", "--duration", "0.6", *sys.argv[2:]],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    # A SIGSTOP cannot be caught: had memtui stopped us, we would not be here before the test's timeout.
    print(json.dumps({"pid": os.getpid(), "rc": out.returncode, "stdout": out.stdout, "stderr": out.stderr,
                      "got": got}))
""")


def run_parent(*args: str, prefix: tuple[str, ...] = ()) -> dict:
    out = subprocess.run(
        [*prefix, sys.executable, "-c", PARENT, *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=memtui_env(),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, f"memtui's parent ended with {out.returncode}: {out.stderr}"
    result = json.loads(out.stdout)
    assert result["got"] == [], "a signal reached memtui's parent"
    assert result["rc"] == 0, result["stderr"]
    return result


@pytest.mark.parametrize("policy", ["term", "stop"])
def test_the_breaker_policy_never_signals_memtuis_own_parent(policy):
    result = run_parent("self", "--on-breaker", policy, *TINY)
    parent = result["pid"]
    target = only_target(json.loads(result["stdout"]))
    assert target["pid"] == parent and target["breaker_trips"] == 1
    (action,) = target["actions"]
    assert action["ok"] is False and action["by"] == "breaker"
    assert re.fullmatch(rf"refused: pid {parent} is memtui's own parent \(python[\d.]*\)", action["error"])
    assert f"pid {parent} (python" in result["stderr"] and "is watched but never signalled: " in result["stderr"]
    assert f"Could not send SIG{'TERM' if policy == 'term' else 'STOP'} to pid {parent}" in result["stderr"]


def test_a_children_tree_holding_memtui_is_never_signalled():
    """--pid <parent> --children: the tree holds memtui itself; stopping it would freeze the watcher."""
    result = run_parent("self", "--children", "--on-breaker", "stop", *TINY)
    (action,) = only_target(json.loads(result["stdout"]))["actions"]
    assert action["ok"] is False and "is memtui's own parent" in action["error"]


def _can_unshare() -> bool:
    try:
        return (
            subprocess.run(
                ["unshare", "--fork", "--pid", "--mount-proc", "true"], capture_output=True, timeout=10
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(
    not _can_unshare(),
    reason="needs unshare --pid --mount-proc (root or user namespaces) to "
    "give the test a pid 1 of its own; the real pid 1 is never a target",
)
def test_pid_1_is_watched_but_never_signalled():
    """In a fresh pid namespace the test's own process is pid 1, with handlers that would see any signal."""
    result = run_parent("init", "--on-breaker", "term", *TINY, prefix=("unshare", "--fork", "--pid", "--mount-proc"))
    assert result["pid"] == 1
    target = only_target(json.loads(result["stdout"]))
    assert target["pid"] == 1 and target["breaker_trips"] == 1
    assert [(a["ok"], a["error"]) for a in target["actions"]] == [(False, "refused: pid 1 is init")]
    assert "is watched but never signalled: pid 1 is init" in result["stderr"]


# -- A2: other users' processes only with --signal-other-users ------------------------------------------


@as_root
def test_another_users_process_is_not_stopped_without_the_flag():
    with sleeper(uid=NOBODY) as theirs:
        out = memtui(
            "run",
            "--mode",
            "monitor",
            "--pid",
            str(theirs.pid),
            "--on-breaker",
            "stop",
            *TINY,
            "--headless",
            "--monitor-interval",
            "0.05",
            "--duration",
            "0.5",
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        (action,) = only_target(report_of(out))["actions"]
        assert action["ok"] is False and action["error"] == (
            f"refused: pid {theirs.pid} (sleep) belongs to user nobody, not root; pass --signal-other-users to allow it"
        )
        assert (
            f"pid {theirs.pid} (sleep 60) is watched but never signalled: pid {theirs.pid} (sleep) belongs to "
            "user nobody" in out.stderr
        )
        assert state(theirs.pid) == "S" and theirs.poll() is None


@as_root
def test_signal_other_users_lets_the_policy_stop_it_and_memtui_resumes_it():
    with sleeper(uid=NOBODY) as theirs:
        proc = popen_memtui(
            "run",
            "--mode",
            "monitor",
            "--pid",
            str(theirs.pid),
            "--on-breaker",
            "stop",
            *TINY,
            "--signal-other-users",
            "--headless",
            "--monitor-interval",
            "0.05",
            "--duration",
            "1",
        )
        try:
            deadline = time.monotonic() + 30
            while state(theirs.pid) != "T":  # really stopped, by the real signal path
                assert time.monotonic() < deadline and proc.poll() is None, "never stopped"
                time.sleep(0.01)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 0, stderr
        actions = only_target(json.loads(stdout))["actions"]
        assert [(a["action"], a["ok"], a["by"]) for a in actions] == [
            ("stop", True, "breaker"),
            ("resume", True, "memtui"),
        ]
        assert state(theirs.pid) == "S"


# -- B: SIGHUP ends a headless watch like SIGTERM: report, exit 130, stopped processes continued ----------


def watch_until_stopped(target_pid: int, *extra: str) -> subprocess.Popen[str]:
    proc = popen_memtui(
        "run",
        "--mode",
        "monitor",
        "--pid",
        str(target_pid),
        "--on-breaker",
        "stop",
        *TINY,
        "--headless",
        "--monitor-interval",
        "0.05",
        *extra,
    )
    deadline = time.monotonic() + 30
    while state(target_pid) != "T":
        assert time.monotonic() < deadline and proc.poll() is None, "memtui never stopped the target"
        time.sleep(0.01)
    return proc


@pytest.mark.parametrize("signals", [(signal.SIGHUP,), (signal.SIGHUP, signal.SIGHUP)], ids=["once", "twice"])
def test_sighup_ends_a_headless_watch_with_a_report_and_continues_what_it_stopped(signals):
    """Twice: a hung-up terminal signals the process group and the shell passes it on again."""
    with sleeper() as target:
        proc = watch_until_stopped(target.pid)
        try:
            for sig in signals:
                proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and "memtui: hangup: ending the watch" in stderr
        report = json.loads(stdout)
        assert report["status"] == "interrupted" and report["exit_code"] == 130
        assert [a["action"] for a in only_target(report)["actions"]] == ["stop", "resume"]
        assert state(target.pid) == "S"


def test_a_headless_watch_whose_terminal_goes_away_exits_130_and_writes_its_report(tmp_path: Path):
    """stdout and stderr on a real pty that is then closed: writes fail with EIO, and nothing may crash."""
    report_path = tmp_path / "report.json"
    with sleeper() as target:
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(REPO)
            os.execve(
                sys.executable,
                [
                    sys.executable,
                    "-m",
                    "memtui",
                    "run",
                    "--mode",
                    "monitor",
                    "--pid",
                    str(target.pid),
                    "--on-breaker",
                    "stop",
                    *TINY,
                    "--headless",
                    "--monitor-interval",
                    "0.05",
                    "--report",
                    str(report_path),
                ],
                memtui_env(),
            )
        try:
            deadline = time.monotonic() + 30
            while state(target.pid) != "T":
                assert time.monotonic() < deadline, "memtui never stopped the target"
                with contextlib.suppress(OSError):
                    os.read(fd, 65536)  # keep the pty drained, as a terminal would
            os.close(fd)  # the terminal goes away: the kernel hangs it up and sends SIGHUP
            code = wait_exit(pid, timeout=15)
        finally:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        assert code == 130
        report = json.loads(report_path.read_text())
        assert report["status"] == "interrupted"
        assert [a["action"] for a in only_target(report)["actions"]] == ["stop", "resume"]
        assert state(target.pid) == "S"


def wait_exit(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    raise AssertionError(f"memtui did not exit within {timeout}s")


def test_a_closed_stdout_pipe_does_not_crash_the_exit():
    """``memtui ... | head -c0``: the reader has left when the JSON report is printed (EPIPE)."""
    with sleeper() as target:
        read_end, write_end = os.pipe()
        os.close(read_end)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "memtui",
                "run",
                "--mode",
                "monitor",
                "--pid",
                str(target.pid),
                "--headless",
                "--duration",
                "0.2",
                "--monitor-interval",
                "0.05",
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=memtui_env(),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
        )
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
