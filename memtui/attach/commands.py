"""The attach subcommands: ``run --detach``, ``ls``, ``attach``, ``stop``; and serving a run (``serve``).

memtui.cli parses the flags and calls these; Textual loads only for ``attach``
without ``--json``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memtui.attach.runs import RunEntry, ensure_runs_dir, entries, find, new_run_id
from memtui.env_seconds import env_seconds
from memtui.errors import MemtuiError, RuntimeFailure, UsageError
from memtui.faces.choice import choose_face
from memtui.paths import default_config
from memtui.safefs import open_private

if TYPE_CHECKING:
    from memtui.attach.server import AttachServer
    from memtui.engine import Engine

#: How long ``run --detach`` waits for the run to accept viewers (env MEMTUI_DETACH_TIMEOUT).
DETACH_TIMEOUT_S = 120.0
#: How long ``stop`` waits for the run's process to end once it has reported.
STOP_WAIT_S = 60.0
RUN_ID_ENV = "MEMTUI_RUN_ID"
LOG_ENV = "MEMTUI_RUN_LOG"


# -- serving a run ------------------------------------------------------------------------


def serve(args: argparse.Namespace, engine: Engine) -> AttachServer | None:
    """Serve ``engine`` on its attach socket; None (with a warning line) if that is not possible."""
    from memtui.attach.server import AttachServer  # noqa: PLC0415

    run_id = os.environ.pop(RUN_ID_ENV, None) or new_run_id()
    if args.mode == "monitor":
        pids = ", ".join(map(str, args.pid))
        what = f"pid {pids}" if args.pid else f"match {args.match!r}" if args.match else "default targets"
        where = ""
    else:
        from memtui.paths import default_cache  # noqa: PLC0415

        what = str(args.input or "sample")
        where = str(args.output) if args.mode == "job" else str(args.cache or default_cache())
    log_path = os.environ.pop(LOG_ENV, "")
    face = choose_face(args.tui, args.headless)
    try:
        server = AttachServer(
            engine,
            run_id=run_id,
            mode=args.mode,
            input=what,
            cache=where,
            log_path=log_path,
            report_path=str(args.report or ""),
            face=face,
        ).start()
    except (OSError, MemtuiError) as exc:
        print(f"memtui: warning: this run cannot be attached to ({exc}); it runs anyway", file=sys.stderr)
        return None
    atexit.register(server.finish, flush_s=0.5)  # a face that raised: no socket or entry left behind
    return server


# -- run --detach -------------------------------------------------------------------------


def child_argv(argv: Sequence[str], run_dir: Path, run_id: str, has_report: bool) -> list[str]:
    """The run's own arguments for the detached process: headless, no --detach, a report in the run folder."""
    out = [a for a in argv if a not in ("--detach", "--tui", "--headless")]
    out.append("--headless")
    if not has_report:
        out += ["--report", str(run_dir / f"{run_id}.report.json")]
    return out


def detach_timeout() -> float:
    """MEMTUI_DETACH_TIMEOUT, checked before anything starts (ConfigError, exit 2)."""
    return env_seconds("MEMTUI_DETACH_TIMEOUT", DETACH_TIMEOUT_S)


def _spooled_stdin(args: argparse.Namespace) -> Any:
    """``--input -``: the piped data, read here once (before detaching) for the detached run's standard input."""
    from memtui.jobs.source import STDIN_NAMES, InputSource  # noqa: PLC0415

    if args.input is None or str(args.input) not in STDIN_NAMES:
        return None
    return InputSource.open(args.input)


def detach(argv: Sequence[str], args: argparse.Namespace) -> int:
    """Start the run in its own session with no terminal; return once it accepts viewers.

    Every setting is checked and the run folder opened before the run starts; piped input is
    spooled here and handed to the run as its standard input."""
    from memtui.attach.client import connect  # noqa: PLC0415

    timeout = detach_timeout()
    run_dir = ensure_runs_dir()
    run_id = new_run_id()
    log_path = run_dir / f"{run_id}.log"
    source = _spooled_stdin(args)
    try:
        try:
            log_fd = open_private(log_path, os.O_WRONLY | os.O_APPEND, "run log")
        except OSError as exc:
            raise UsageError(
                f"cannot write the run log {log_path}: {exc.strerror or exc}; set MEMTUI_RUN_DIR to a folder of yours"
            ) from None
        env = dict(os.environ, **{RUN_ID_ENV: run_id, LOG_ENV: str(log_path), "PYTHONUNBUFFERED": "1"})
        argv = list(argv)
        command = [sys.executable, "-m", "memtui", *child_argv(argv, run_dir, run_id, args.report is not None)]
        try:
            stdin: Any = open(source.path, "rb") if source is not None else subprocess.DEVNULL  # noqa: SIM115
        except BaseException:
            os.close(log_fd)
            raise
        try:
            proc = subprocess.Popen(
                command,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=log_fd,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        except OSError as exc:
            raise RuntimeFailure(f"cannot start the detached run ({exc.strerror or exc})") from None
        finally:
            os.close(log_fd)
            if source is not None:
                stdin.close()
    finally:
        if source is not None:
            source.close()
    deadline = time.monotonic() + timeout
    sock_path = run_dir / f"{run_id}.sock"
    while True:
        code = proc.poll()
        if code is not None:
            tail = _tail(log_path)
            if code == 2:  # a usage error: its own line says it all
                last = (tail.strip().splitlines() or [f"exit {code}"])[-1]
                raise UsageError(last.removeprefix("memtui: error: "))
            raise RuntimeFailure(
                f"the detached run ended before it accepted viewers (exit {code}); its log {log_path}:\n{tail}"
            )
        if sock_path.exists():
            try:
                connect(str(sock_path), timeout=1.0).close()
                break
            except UsageError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeFailure(
                f"the detached run (pid {proc.pid}) did not accept viewers within {timeout:g}s "
                f"(MEMTUI_DETACH_TIMEOUT); it may still be starting: see its log {log_path}"
            )
        time.sleep(0.1)
    proc.returncode = 0  # it lives on in its own session; nobody here waits for it
    print(f"memtui: run {run_id} detached: pid {proc.pid}, log {log_path}; attach with: memtui attach {run_id}")
    return 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- ls -----------------------------------------------------------------------------------

FIELDS = ("id", "pid", "mode", "input", "cache", "phase", "items_done", "items_total", "rss_gb", "breaker", "viewers")


#: How long ``ls`` (and the chooser) waits for each run's state; the runs are asked at once.
STATUS_TIMEOUT_S = 5.0
NOT_RESPONDING = "not responding"


def status(entry: RunEntry, timeout: float = STATUS_TIMEOUT_S) -> dict[str, Any]:
    """An entry and its live state, asked over its socket within ``timeout`` in all: a run that does not
    answer (stopped with SIGSTOP, wedged, or a socket that sends no run's lines) is "not responding"."""
    from memtui.attach.client import NotResponding, connect, read_lines  # noqa: PLC0415
    from memtui.wire import WireError, loads  # noqa: PLC0415

    row: dict[str, Any] = {
        "id": entry.id,
        "pid": entry.pid,
        "mode": entry.mode,
        "input": entry.input,
        "cache": entry.cache,
        "phase": NOT_RESPONDING,
        "items_done": None,
        "items_total": None,
        "rss_gb": None,
        "breaker": "?",
        "viewers": None,
    }
    deadline = time.monotonic() + timeout
    try:
        sock = connect(entry.socket, timeout)
    except UsageError:
        return row
    try:
        for raw in read_lines(sock, deadline=deadline):
            kind, body = loads(raw)
            if kind == "hello" and isinstance(body, dict):
                row["viewers"] = max(0, int(body.get("viewers", 1)) - 1)  # not counting ls itself
            elif kind == "snapshot":
                _fill(row, body)
                break
    except (OSError, WireError, NotResponding, TypeError, ValueError, AttributeError):
        row.update(phase=NOT_RESPONDING, viewers=None)
    finally:
        sock.close()
    return row


def statuses(running: Sequence[RunEntry]) -> list[dict[str, Any]]:
    """Every run's ``status``, asked at once: a few stopped runs cost one timeout, not one each."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    if not running:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(running))) as pool:
        return list(pool.map(status, running))


def _fill(row: dict[str, Any], s: Any) -> None:
    if hasattr(s, "items_done"):
        row.update(
            phase="paused" if s.paused else s.phase,
            items_done=s.items_done,
            items_total=s.items_total,
            rss_gb=round(s.memory.rss_gb, 3),
            breaker=s.memory.state.value,
        )
    else:  # the monitor: its targets' total
        row.update(
            phase="paused" if s.paused else "finished" if s.finished else "watching",
            items_done=sum(1 for t in s.targets if t.state.value != "gone"),
            items_total=len(s.targets),
            rss_gb=round(sum(getattr(t, "rss", 0) for t in s.targets) / 1024**3, 3),
            breaker="-",
        )


def list_runs(args: argparse.Namespace) -> int:
    rows = statuses(entries())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no memtui run is running")
        return 0
    for line in table(rows):
        print(line)
    return 0


#: Column widths (negative: left-aligned); INPUT comes last, whatever room is left.
WIDTHS = {"ID": -8, "PID": 7, "MODE": -10, "PHASE": -10, "DONE": 15, "RSS": 8, "BREAKER": -9, "VIEWERS": 7}
CHOOSER_COLUMNS = ("ID", "MODE", "PHASE", "DONE", "RSS")


def table(
    rows: list[dict[str, Any]], columns: Sequence[str] = tuple(WIDTHS), *, numbered: bool = False, width: int = 0
) -> list[str]:
    """``ls``'s table: a header, then one line per run (numbered from 1 for the chooser); with ``width``,
    the INPUT column keeps its end within it."""
    heads = {c: c for c in (*columns, "INPUT")}
    lines = [_table_line(heads, columns, "    " if numbered else "", width)]
    for n, r in enumerate(rows, 1):
        cells = {
            "ID": r["id"],
            "PID": r["pid"],
            "MODE": r["mode"],
            "PHASE": r["phase"],
            "DONE": f"{r['items_done']}/{r['items_total']}" if r["items_total"] is not None else "?",
            "RSS": f"{r['rss_gb']:.2f}GB" if r["rss_gb"] is not None else "?",
            "BREAKER": r["breaker"],
            "VIEWERS": "?" if r["viewers"] is None else r["viewers"],
            "INPUT": r["input"],
        }
        lines.append(_table_line(cells, columns, f"{n:>2}) " if numbered else "", width))
    return lines


def _table_line(cells: dict[str, Any], columns: Sequence[str], prefix: str, width: int) -> str:
    head = prefix + " ".join(f"{cells[c]:{'<' if WIDTHS[c] < 0 else '>'}{abs(WIDTHS[c])}}" for c in columns) + "  "
    tail = str(cells["INPUT"])
    room = width - len(head)
    if width and len(tail) > room:
        tail = "…" + tail[-(room - 1) :] if room > 1 else ""
    return head + tail


# -- attach -------------------------------------------------------------------------------


def attach(args: argparse.Namespace) -> int:
    from memtui.tui.keymap import load_keymap  # noqa: PLC0415 - pure: no Textual

    keymap = load_keymap(args.config or default_config())  # the operator's keys, as in the run's own TUI; exit 2 first
    entry = pick(args.id)
    if entry is None:
        print("memtui: no run chosen; nothing attached", file=sys.stderr)
        return 0
    if args.json:
        return stream_json(entry)
    from memtui.attach.client import RemoteEngine  # noqa: PLC0415

    engine = RemoteEngine(entry.socket)
    from memtui.tui.attached import attached_app_class  # noqa: PLC0415

    core_log = logging.getLogger("memtui")
    core_log.addHandler(logging.NullHandler())
    core_log.propagate = False
    viewer = attached_app_class(engine)  # a RemoteEngine, duck-typed
    app: Any = viewer(engine, theme=args.theme, handle_signals=True, keymap=keymap)
    result = app.run(mouse=app.MOUSE)
    if app.lost:
        print(f"memtui: {app.lost}", file=sys.stderr)
        return 1
    report = result or engine.report
    if report is None:
        print(f"memtui: detached from run {entry.id} (it goes on: 'memtui attach {entry.id}' comes back)")
        return 0
    for line in report.summary_lines():  # each engine's typed report words its own summary
        print(line)
    return int(report.exit_code)


def pick(run_id: str | None) -> RunEntry | None:
    """The run to attach to: ``find``'s, but with several runs and no id on a terminal, the operator's choice."""
    if run_id is None and sys.stdin.isatty() and sys.stdout.isatty():
        running = entries()
        if len(running) > 1:
            return choose(running)
    return find(run_id)


def choose(running: list[RunEntry], ask: Any = input) -> RunEntry | None:
    """A numbered list of the runs and a prompt (works over SSH, any size, no mouse); None if cancelled."""
    print(f"{len(running)} memtui runs are running:")
    width = shutil.get_terminal_size().columns - 1
    for line in table(statuses(running), CHOOSER_COLUMNS, numbered=True, width=width):
        print(line)
    while True:
        try:
            answer = ask(f"attach to which run? [1-{len(running)} or its id, q cancels]: ").strip()
        except EOFError:
            return None
        if answer.lower() in ("q", "quit"):
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(running):
            return running[int(answer) - 1]
        # A number out of range is a wrong number, not an id prefix (ids are random hex: "7" could pick 7e8ef9).
        prefix_ok = bool(answer) and not answer.isdigit()
        matches = [e for e in running if e.id == answer] or [
            e for e in running if prefix_ok and e.id.startswith(answer)
        ]
        if len(matches) == 1:
            return matches[0]
        print(f"no single run is {answer!r}: type a number from 1 to {len(running)}, an id, or q")


def stream_json(entry: RunEntry) -> int:
    """Every wire line the run sends, to stdout, until it ends: its exit code, or 1 if it ended abnormally.

    A script gets full snapshots only: each "delta" goes out as the "snapshot" it stands for (joined
    in JSON, never decoded: this viewer shares the run's CPUs)."""
    from memtui.attach.client import LineReader, NotResponding, connect  # noqa: PLC0415
    from memtui.wire import WireError, loads  # noqa: PLC0415

    sock = connect(entry.socket)
    code = None
    full = _FullSnapshots()
    try:
        for raw in _stream(LineReader(sock), entry, NotResponding):
            try:
                out = full.line(raw)
            except (ValueError, KeyError, TypeError) as exc:
                raise RuntimeFailure(
                    f"the socket of run {entry.id} sent a line no run sends ({type(exc).__name__}); this viewer left"
                ) from None
            if out is None:
                continue
            try:
                sys.stdout.write(out + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                return 0
            if b'"kind":"report"' not in raw and b'"kind":"reply"' not in raw:
                continue  # passed on as it came: a viewer decodes only what ends it (it shares the run's CPUs)
            try:
                kind, body = loads(raw)
            except WireError:
                continue
            if kind == "reply" and not body.get("ok"):
                raise UsageError(f"the run refused this viewer: {body.get('error')}")
            if kind == "report":
                code = int(body["exit_code"])
    finally:
        sock.close()
    if code is None:
        print(f"memtui: the run {entry.id} ended abnormally (its connection closed without a report)", file=sys.stderr)
        return 1
    return code


def _stream(reader: Any, entry: RunEntry, not_responding: type[Exception]) -> Any:
    """The run's lines, or one line saying it stopped answering (a run SIGSTOPped, a socket that is no run's)."""
    try:
        yield from reader.run_lines()
    except not_responding as exc:
        raise RuntimeFailure(
            f"the run {entry.id} (pid {entry.pid}) is not responding ({exc}): it may be stopped (SIGSTOP) "
            f"or wedged; this viewer left ('memtui ls' shows its state)"
        ) from None


class _FullSnapshots:
    """Wire lines with each "delta" turned into the full "snapshot" it stands for (memtui.attach.delta)."""

    def __init__(self) -> None:
        from memtui.attach.delta import JsonSnapshots  # noqa: PLC0415

        self.snapshots = JsonSnapshots()

    def line(self, raw: bytes) -> str | None:
        head = raw[:48]  # the envelope's "kind" comes before its body: no text of a body is read here
        if b'"kind":"snapshot"' in head:
            self.snapshots.full(json.loads(raw)["body"])
        elif b'"kind":"delta"' in head:
            message = json.loads(raw)
            body = self.snapshots.delta(message["body"]["snapshot"], message["body"]["history_len"])
            if body is None:
                return None  # never before the first snapshot
            return f'{{"memtui_wire":{message["memtui_wire"]},"kind":"snapshot","body":{body}}}'
        return raw.decode()


# -- stop ---------------------------------------------------------------------------------


def stop(args: argparse.Namespace) -> int:
    from memtui.attach.client import RemoteEngine, RunLost  # noqa: PLC0415

    entry = find(args.id)
    engine = RemoteEngine(entry.socket)
    how = (
        "ending the watch (memtui resumes what it stopped)"
        if entry.mode == "monitor"
        else "committing the batch in flight"
    )
    print(f"memtui: stopping run {entry.id} (pid {entry.pid}): {how}", file=sys.stderr)
    engine.stop()
    try:
        report = engine.run()
    except RunLost as exc:
        print(f"memtui: {exc}", file=sys.stderr)
        return 1
    print(f"memtui: run {entry.id} ended: {report.status} (exit {report.exit_code})", file=sys.stderr)
    reason = getattr(report, "reason", None)  # e.g. a job's stop whose grace ran out: what was lost
    if reason:
        print(f"memtui: {reason}", file=sys.stderr)
    if entry.face == "tui":  # its TUI keeps the report on screen until its operator leaves
        print(f"memtui: its TUI (pid {entry.pid}) shows the report until its operator quits", file=sys.stderr)
        return 0
    deadline = time.monotonic() + STOP_WAIT_S
    while entry.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if entry.alive():
        print(f"memtui: pid {entry.pid} is still running {STOP_WAIT_S:.0f}s after its report", file=sys.stderr)
        return 1
    return 0
