"""Serve one run's engine to viewers on a private Unix socket (never TCP).

``AttachServer(engine, ...).start()`` binds ``ID.sock`` in the private run
folder (memtui.attach.runs; the socket 0600), writes the run's registry entry
and accepts viewers in a thread. A peer whose uid is not ours (SO_PEERCRED) is
refused. Each viewer gets, as wire JSON lines (memtui.wire): a "hello" (the run
id, engine kind, commands), the current snapshot (it carries the last minute of
memory history), the recent events, then live events as they happen and every
``snapshot_every_s`` a "delta" (the snapshot with only the history samples that
are new: memtui.attach.delta); a "report" when the run ends. A viewer sends "command"
messages: only names in ``engine.commands`` reach the engine (memtui.engine.call),
with keyword arguments of plain values; each gets a "reply" (with what the command
returned, where the wire carries it).

Nothing here ever waits for a viewer: one pump thread reads the engine (one
event queue, one snapshot per period, each line encoded once) and appends to
each viewer's bounded outbox; a sender thread per viewer writes it out. A
viewer that falls behind is resynced: a delta it has not taken yet is replaced
by the full snapshot; an outbox that fills up is dropped for the full snapshot
and a notice; one that takes longer than
``send_timeout_s`` to accept a write is dropped.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

from memtui import wire
from memtui.attach import delta
from memtui.attach.client import peer_credentials
from memtui.attach.runs import RunEntry, ensure_runs_dir, new_run_id, process_since_boot, process_start, remove
from memtui.engine import Engine, call
from memtui.events import Notice
from memtui.safefs import lstat_or_none

log = logging.getLogger("memtui")

OUTBOX_LINES = 2_000
SEND_TIMEOUT_S = 10.0
#: 2 a second: plenty for a human; events are not held back by it.
SNAPSHOT_EVERY_S = 0.5
RECENT_EVENTS = 200

__all__ = ["AttachServer", "peer_credentials"]


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


class _Viewer:
    def __init__(self, server: AttachServer, conn: socket.socket, pid: int) -> None:
        self.server = server
        self.conn = conn
        self.pid = pid
        self.outbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self.cond = threading.Condition()
        self.open = True
        self.resyncs = 0
        self.sending = False

    # -- the pump side: never blocks -------------------------------------------------
    def push(self, kind: str, line: bytes) -> None:
        with self.cond:
            if not self.open:
                return
            if kind in _FRAMES and self.outbox and self.outbox[-1][0] in _FRAMES:
                # A newer frame supersedes one not yet sent; a delta's samples would be lost with it: send them all.
                self.outbox[-1] = (kind, line) if kind == "snapshot" else ("snapshot", self.server.full_line())
            elif len(self.outbox) >= self.server.outbox_lines:
                self.resyncs += 1
                dropped = len(self.outbox)
                self.outbox.clear()
                note = Notice(f"this viewer fell behind: {dropped} message(s) dropped, resynced", level="warning")
                self.outbox.append(("event", _line("event", note)))
                self.outbox.append(("snapshot", self.server.full_line()))
                if kind not in _FRAMES:
                    self.outbox.append((kind, line))
            else:
                self.outbox.append((kind, line))
            self.cond.notify()

    # -- the viewer's own threads ----------------------------------------------------
    def send_loop(self) -> None:
        try:
            while True:
                with self.cond:
                    while self.open and not self.outbox:
                        self.cond.wait()
                    if not self.outbox:
                        return
                    batch = list(self.outbox)
                    self.outbox.clear()
                    self.sending = True
                self.conn.sendall(b"".join(line for _, line in batch))
                with self.cond:
                    self.sending = False
                    self.cond.notify_all()
        except OSError:  # gone, or frozen for send_timeout_s
            pass
        finally:
            self.close()

    def read_loop(self) -> None:
        buffer = b""
        try:
            while self.open:
                try:
                    chunk = self.conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > 1 << 20:
                    break  # no command is that long
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    if raw.strip():
                        self.push("reply", _line("reply", self.server.handle(raw)))
        except OSError:
            pass
        finally:
            self.close()

    def flush(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.open and (self.outbox or self.sending) and time.monotonic() < deadline:
                self.cond.wait(0.05)

    def close(self) -> None:
        with self.cond:
            was_open, self.open = self.open, False
            self.cond.notify_all()
        if was_open:
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.conn.close()
            self.server.forget(self)


_FRAMES = ("snapshot", "delta")  # what a viewer draws: a full snapshot, or one whose histories hold only new samples


def _line(kind: str, body: Any) -> bytes:
    return (wire.dumps(kind, body) + "\n").encode()


def _report_line(report: Any) -> bytes:
    """The report as the engine made it (a typed report the wire knows), else its dict form."""
    try:
        return _line("report", report)
    except wire.WireError:
        return _line("report", report.to_dict())


class AttachServer:
    """One run's engine, served on ``ID.sock`` in the private run folder until ``finish()``."""

    def __init__(
        self,
        engine: Engine,
        *,
        run_id: str | None = None,
        mode: str = "",
        input: str = "",
        cache: str = "",
        log_path: str = "",
        report_path: str = "",
        face: str = "",
        snapshot_every_s: float = SNAPSHOT_EVERY_S,
        outbox_lines: int = OUTBOX_LINES,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        self.engine = engine
        self.run_id = run_id or new_run_id()
        self.meta = {"mode": mode, "input": input, "cache": cache}
        self.log_path, self.report_path, self.face = log_path, report_path, face
        self.snapshot_every_s = snapshot_every_s
        self.outbox_lines = outbox_lines
        self.send_timeout_s = send_timeout_s
        self.entry: RunEntry | None = None
        self._viewers: list[_Viewer] = []
        self._lock = threading.Lock()
        self._recent: collections.deque[bytes] = collections.deque(maxlen=RECENT_EVENTS)
        self._events = engine.subscribe()
        self._closing = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._report_sent = False
        self._order = threading.RLock()  # events, then the report: from the pump or from finish()
        self._base: Any = None  # the last snapshot the pump sent: the next delta starts where it ends
        self._since: dict[str, float] = {}
        self._full: bytes | None = None  # the base, encoded in full once if a viewer needs it
        self._finished = False
        self.refused = 0

    @property
    def socket_path(self) -> Path:
        assert self.entry is not None
        return Path(self.entry.socket)

    @property
    def viewers(self) -> int:
        with self._lock:
            return len(self._viewers)

    def start(self) -> AttachServer:
        folder = ensure_runs_dir()
        path = folder / f"{self.run_id}.sock"
        st = lstat_or_none(path)
        if st is not None and stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid():
            path.unlink()  # a dead run's socket of ours; anything else there makes the bind fail, untouched
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            os.chmod(path, 0o600)  # the folder is 0700: nobody else could reach it in between
            listener.listen(16)
            listener.settimeout(0.5)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        pid = os.getpid()
        self.entry = RunEntry(
            id=self.run_id,
            pid=pid,
            start_time=process_start(pid) or 0.0,
            since_boot=process_since_boot(pid) or 0.0,
            socket=str(path),
            log=self.log_path,
            report=self.report_path,
            started_at=time.time(),
            face=self.face,
            **self.meta,
        )
        self.entry.write()
        for target, name in ((self._accept_loop, "memtui-attach"), (self._pump_loop, "memtui-attach-pump")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    # -- reading the engine -----------------------------------------------------------
    def full_line(self) -> bytes:
        """The last snapshot sent as a delta, in full (encoded at most once a period): resyncs a viewer."""
        with self._lock:
            if self._full is None:
                if self._base is None:
                    self._base = self.engine.snapshot()
                self._full = _line("snapshot", self._base)
            return self._full

    def _pump_loop(self) -> None:
        next_snapshot = 0.0
        report_due: Any = None
        while not self._closing.is_set():
            self._events.wait(timeout=0.1)
            self._pass_events()
            if report_due is not None:  # a round after the snapshot showed it: the engine's last events are out
                self.send_report(report_due)
                report_due = None
            with self._lock:
                viewers = list(self._viewers)
            now = time.monotonic()
            if viewers and now >= next_snapshot:
                next_snapshot = now + self.snapshot_every_s
                snap = self.engine.snapshot()
                with self._lock:
                    body, lengths = delta.cut(snap, self._since)
                    self._base, self._since, self._full = snap, delta.since(snap), None
                line = _line("delta", {"snapshot": body, "history_len": lengths})
                for viewer in viewers:
                    viewer.push("delta", line)
                if snap.report is not None and not self._report_sent:
                    report_due = snap.report

    def _pass_events(self) -> None:
        """The engine's new events to every viewer, in order; none after the report (the run's last word)."""
        with self._order:
            lines = [_line("event", event) for event in self._events.drain()]
            with self._lock:
                self._recent.extend(lines)
                viewers = [] if self._report_sent else list(self._viewers)
            for line in lines:
                for viewer in viewers:
                    viewer.push("event", line)

    def send_report(self, report: Any) -> None:
        with self._order:
            self._pass_events()  # what the engine said before it reported goes first
            with self._lock:
                if self._report_sent:
                    return
                self._report_sent = True
                viewers = list(self._viewers)
            line = _report_line(report)
            for viewer in viewers:
                viewer.push("report", line)

    # -- viewers ----------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closing.is_set():
                    return
                time.sleep(0.1)
                continue
            try:
                self._welcome(conn)
            except OSError:
                conn.close()

    def _welcome(self, conn: socket.socket) -> None:
        pid, uid, _gid = peer_credentials(conn)
        if uid != os.geteuid():
            self.refused += 1
            log.warning("attach: refused a viewer of uid %d (pid %d): only uid %d may attach", uid, pid, os.geteuid())
            conn.settimeout(1.0)
            try:
                conn.sendall(_line("reply", {"ok": False, "error": "refused: another user's run"}))
            finally:
                conn.close()
            return
        conn.settimeout(self.send_timeout_s)
        viewer = _Viewer(self, conn, pid)
        snapshot = self.engine.snapshot()
        with self._lock:
            viewers = len(self._viewers)
            hello = {
                "id": self.run_id,
                "pid": os.getpid(),
                "kind": self.engine.kind,
                "commands": list(self.engine.commands),
                "viewers": viewers + 1,
                **self.meta,
            }
            viewer.outbox.append(("hello", _line("hello", hello)))
            viewer.outbox.append(("snapshot", _line("snapshot", snapshot)))
            if not viewers:  # nobody else follows the deltas: the next one starts where this viewer is
                self._base, self._since, self._full = snapshot, delta.since(snapshot), None
            viewer.outbox.extend(("event", line) for line in self._recent)
            if self._report_sent and snapshot.report is not None:
                viewer.outbox.append(("report", _report_line(snapshot.report)))
            self._viewers.append(viewer)
        for target, name in ((viewer.send_loop, "memtui-viewer-send"), (viewer.read_loop, "memtui-viewer-read")):
            threading.Thread(target=target, name=f"{name}-{pid}", daemon=True).start()

    def forget(self, viewer: _Viewer) -> None:
        with self._lock:
            if viewer in self._viewers:
                self._viewers.remove(viewer)

    def handle(self, raw: bytes) -> dict[str, Any]:
        """One viewer command: {"id", "name", "kwargs"}; only the engine's commands, plain values only."""
        try:
            kind, body = wire.loads(raw)
            if kind != "command" or not isinstance(body, dict):
                raise wire.WireError(f"a viewer sends commands, not {kind!r}")
            number = body.get("id")
            name = body.get("name")
            kwargs = body.get("kwargs") or {}
            args = body.get("args") or []
            if not isinstance(name, str) or not isinstance(kwargs, dict) or not isinstance(args, list):
                raise wire.WireError("a command needs a name, args (a list) and kwargs (an object)")
            if not all(_plain(v) for v in [*args, *kwargs.values()]) or not all(isinstance(k, str) for k in kwargs):
                raise wire.WireError("command arguments are plain values only")
        except Exception as exc:  # WireError, or a listed type built with the wrong fields
            return {"id": None, "ok": False, "error": f"not a command: {exc}"}
        try:
            result = call(self.engine, name, *args, **kwargs)
        except Exception as exc:  # the viewer hears why; the run goes on
            return {"id": number, "ok": False, "error": str(exc), "type": type(exc).__name__}
        try:  # what the command returned, if the wire carries it (the monitor's Action for pause_target ...)
            wire.encode(result)
        except wire.WireError:
            result = None
        return {"id": number, "ok": True, "result": result}

    # -- the end ----------------------------------------------------------------------
    def finish(self, report: Any = None, *, flush_s: float = 2.0) -> None:
        """Send the report (if any) to every viewer, give them ``flush_s`` to take it, close, remove the files."""
        if self._finished:
            return
        self._finished = True
        if report is not None:
            self.send_report(report)
        with self._lock:
            viewers = list(self._viewers)
        deadline = time.monotonic() + flush_s
        for viewer in viewers:
            viewer.flush(max(0.0, deadline - time.monotonic()))
        self._closing.set()
        if self._listener is not None:
            self._listener.close()
        for viewer in viewers:
            viewer.close()
        self.engine.unsubscribe(self._events)
        if self.entry is not None:
            remove(self.entry)
