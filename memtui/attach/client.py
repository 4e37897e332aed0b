"""A viewer's end of an attach socket: ``RemoteEngine`` (an Engine a face can host) and plain streams.

``RemoteEngine(socket_path)`` connects (a Unix socket only), reads the run's
"hello" and first snapshot, then a reader thread keeps ``snapshot()`` (the last
one received, each "delta" joined to the one before: memtui.attach.delta) and a
local event bus (``subscribe()``, with the recent past the
server replayed) current. Commands go out as wire "command" messages and wait
briefly for their "reply"; ``set_thresholds`` raises ConfigError as the engine
does. ``run()`` waits until the run reports (its report) or the connection is
lost without one (``RunLost``). ``detach()`` closes the connection: the run goes
on, and every command after it (a face's stop on unmount) does nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

from memtui import wire
from memtui.attach import delta
from memtui.errors import ConfigError, InputError, RuntimeFailure, UsageError
from memtui.events import EventBus, EventQueue
from memtui.records import MonitorReport, Report, RunReport

#: The engine's errors a viewer raises as such (a face catches memtui's errors); any other is a ValueError.
_ERRORS: dict[str, type[Exception]] = {e.__name__: e for e in (ConfigError, InputError, UsageError, RuntimeFailure)}

CONNECT_TIMEOUT_S = 5.0
#: How long a run has to send its hello and first snapshot (generous: the machine may be loaded).
HELLO_TIMEOUT_S = 15.0
REPLY_TIMEOUT_S = 5.0
#: A run sends a frame twice a second to each viewer: this long a silence means it is stopped or wedged.
SILENT_S = 60.0
#: No wire line is near this long (a full snapshot is well under a megabyte).
MAX_LINE_BYTES = 16 * 1024 * 1024
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

__all__ = ["NotResponding", "RemoteEngine", "RunLost", "connect", "peer_credentials", "read_lines"]


class RunLost(RuntimeFailure):
    """The connection to the run ended before the run reported: it was killed or crashed (exit 1)."""


class NotResponding(RuntimeFailure):
    """The run did not answer in time (stopped with SIGSTOP, wedged) or sent what no run sends (exit 1)."""


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    return _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def connect(path: str, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """A connection to a run's socket, refused unless the process serving it is ours (SO_PEERCRED)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        _pid, uid, _gid = peer_credentials(sock)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot attach to {path}: {exc.strerror or exc}") from None
    if uid != os.geteuid():
        sock.close()
        raise UsageError(f"cannot attach to {path}: it is served by uid {uid}, not by you (uid {os.geteuid()})")
    return sock


class LineReader:
    """The lines a server sends, with every wait bounded: by the socket's timeout (that long a silence raises
    NotResponding) and, with a ``deadline`` (time.monotonic()), in all; a line over ``max_line`` bytes raises
    NotResponding too. What is read past a line stays here for the next ``lines()``."""

    def __init__(self, sock: socket.socket, max_line: int = MAX_LINE_BYTES) -> None:
        self.sock = sock
        self.max_line = max_line
        self.buffer = b""

    def lines(self, deadline: float | None = None) -> Iterator[bytes]:
        idle = self.sock.gettimeout()
        try:
            while True:
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    yield line
                if len(self.buffer) > self.max_line:
                    raise NotResponding(f"the run sent a line of over {self.max_line} bytes; no run does")
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise NotResponding("the run did not answer in time")
                    self.sock.settimeout(min(left, idle) if idle else left)
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    raise NotResponding("the run did not answer in time") from None
                except OSError:
                    chunk = b""
                if not chunk:
                    return
                self.buffer += chunk
        finally:
            if deadline is not None:
                with contextlib.suppress(OSError):
                    self.sock.settimeout(idle)

    def run_lines(self, hello_s: float = HELLO_TIMEOUT_S, silent_s: float = SILENT_S) -> Iterator[bytes]:
        """A viewer's lines: the first snapshot within ``hello_s``, then no silence longer than ``silent_s``."""
        for line in self.lines(deadline=time.monotonic() + hello_s):
            yield line
            if b'"kind":"snapshot"' in line[:48]:
                break
        else:
            return
        self.sock.settimeout(silent_s)
        yield from self.lines()


def read_lines(sock: socket.socket, *, deadline: float | None = None) -> Iterator[bytes]:
    """The lines the server sends until it closes the connection, each wait bounded (LineReader)."""
    return LineReader(sock).lines(deadline)


def _refused(kind: str, body: Any) -> None:
    if kind == "reply" and isinstance(body, dict) and not body.get("ok"):
        raise UsageError(f"the run refused this viewer: {body.get('error')}")


class RemoteEngine:
    """An Engine (memtui.engine) whose work runs in another process, reached through its attach socket."""

    def __init__(self, socket_path: str, *, timeout: float = HELLO_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self._sock = connect(socket_path, min(timeout, CONNECT_TIMEOUT_S))
        self._reader_lines = LineReader(self._sock)
        self.hello: dict[str, Any] = {}
        self._last: Any = None
        self._bus = EventBus(replay=500)
        self._report: Report | None = None
        self._ended = threading.Event()
        self.lost = False
        self.silent = False  # the run stopped answering (SIGSTOP, wedged) rather than closing
        self.detached = False
        self._numbers = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._reply_ready = threading.Condition()
        self._send_lock = threading.Lock()
        try:
            for raw in self._reader_lines.lines(deadline=time.monotonic() + timeout):
                kind, body = wire.loads(raw)
                _refused(kind, body)
                if kind == "hello":
                    self.hello = body
                elif kind == "snapshot":
                    self._last = body
                    break
            else:
                raise UsageError(f"the run at {socket_path} closed the connection before its first snapshot")
        except (NotResponding, wire.WireError) as exc:
            self._sock.close()
            raise NotResponding(
                f"the run at {socket_path} is not responding ({exc}; no first snapshot within {timeout:g}s): "
                "it may be stopped (SIGSTOP) or wedged; 'memtui ls' shows its state"
            ) from None
        except BaseException:
            self._sock.close()
            raise
        self._sock.settimeout(SILENT_S)
        self._reader = threading.Thread(target=self._read_loop, name="memtui-remote", daemon=True)
        self._reader.start()

    # -- what the server says ---------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            for raw in self._reader_lines.lines():
                try:
                    kind, body = wire.loads(raw)
                except wire.WireError:
                    continue
                if kind == "snapshot":
                    self._last = body
                elif kind == "delta":
                    try:
                        self._last = delta.apply(self._last, body["snapshot"], body["history_len"])
                    except (KeyError, TypeError, AttributeError, ValueError):
                        continue  # not a delta any run sends: the next full frame resyncs
                elif kind == "event":
                    self._bus.publish(body)
                elif kind == "report":  # the run is over (its host may stay up: a TUI showing it)
                    if not isinstance(body, (RunReport, MonitorReport)):
                        continue  # not a typed report (another memtui's): the run counts as lost, not misread
                    self._report = body
                    self._ended.set()
                elif kind == "reply" and isinstance(body, dict):
                    with self._reply_ready:
                        self._replies[body.get("id") or 0] = body
                        self._reply_ready.notify_all()
        except NotResponding:
            self.silent = True
            with contextlib.suppress(OSError):
                self._sock.close()
        finally:
            if self._report is None and not self.detached:
                self.lost = True
            self._ended.set()
            with self._reply_ready:
                self._reply_ready.notify_all()

    # -- the Engine protocol ----------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.hello.get("kind", "job"))

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(self.hello.get("commands", ()))

    @property
    def run_id(self) -> str:
        return str(self.hello.get("id", "?"))

    @property
    def report(self) -> Report | None:
        return self._report

    @property
    def children(self) -> bool:  # the monitor app reads it
        return bool(getattr(self._last, "children", False))

    def run(self) -> Report:
        """Wait for the run to end: its report, or RunLost if the connection ended without one."""
        self._ended.wait()
        if self._report is not None:
            return self._report
        if self.detached:
            raise RunLost(f"detached from run {self.run_id}")
        if self.silent:
            raise RunLost(
                f"the run {self.run_id} (pid {self.hello.get('pid')}) sent nothing for {SILENT_S:g}s: it is stopped "
                f"(SIGSTOP) or wedged; this viewer left (it may go on: 'memtui attach {self.run_id}')"
            )
        raise RunLost(
            f"the run {self.run_id} ended abnormally (pid {self.hello.get('pid')}: its connection "
            "closed without a report; it was killed or crashed)"
        )

    def snapshot(self) -> Any:
        return self._last

    def subscribe(self) -> EventQueue:
        return self._bus.subscribe()

    def unsubscribe(self, queue: EventQueue) -> None:
        self._bus.unsubscribe(queue)

    # stop, pause, resume and cleanup need no answer: the snapshots show whether they took effect
    # (and a run that has ended takes none). Every other command's answer matters to its caller.
    def stop(self) -> None:
        self._send_unanswered("stop")

    def pause(self) -> None:
        self._send_unanswered("pause")

    def resume(self) -> None:
        self._send_unanswered("resume")

    def request_cleanup(self) -> None:
        self._send_unanswered("request_cleanup")

    def set_thresholds(
        self, *, warning: str | float | None = None, max: str | float | None = None, **levels: Any
    ) -> Any:
        """The protocol's two levels, and whatever more the engine takes (the job's reset level)."""
        return self.send_command("set_thresholds", warning=warning, max=max, **levels)

    def emergency_exit(self, why: str) -> None:
        """A viewer leaving at once must not end the run: it only detaches."""
        self.detach()

    def __getattr__(self, name: str) -> Any:
        # The engine's own commands (set_batch_limits, pause_target, ...), as memtui.engine.call finds them.
        if name.startswith("_") or name not in self.__dict__.get("hello", {}).get("commands", ()):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.send_command(name, *args, **kwargs)

    # -- commands ---------------------------------------------------------------------
    def send_command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Send one command and wait for its reply: what the engine's command returned (None if the wire
        cannot carry it), or memtui's error as the engine raised it (ValueError for any other).

        RuntimeFailure when no answer comes (detached, the run ended or went away, or it did not answer
        in time): the command may not have been applied, and the caller must not read None as done."""
        if self.detached or self._ended.is_set():
            raise RuntimeFailure(
                f"{name}: not sent, {'this viewer has detached' if self.detached else 'the run has ended'}"
            )
        number = next(self._numbers)
        body = {"id": number, "name": name, "args": list(args), "kwargs": kwargs}
        line = (wire.dumps("command", body) + "\n").encode()
        try:
            with self._send_lock:
                self._sock.sendall(line)
        except OSError:
            raise RuntimeFailure(f"{name}: not sent, the run has gone away") from None
        with self._reply_ready:
            self._reply_ready.wait_for(lambda: number in self._replies or self._ended.is_set(), REPLY_TIMEOUT_S)
            reply = self._replies.pop(number, None)
        if reply is None:
            raise RuntimeFailure(
                f"{name}: the run did not answer within {REPLY_TIMEOUT_S:g}s (it may have ended or be very busy); "
                "look at its state before asking again"
            )
        if reply.get("ok"):
            return reply.get("result")
        error = str(reply.get("error"))
        raise _ERRORS.get(str(reply.get("type")), ValueError)(error)

    def _send_unanswered(self, name: str) -> None:
        with contextlib.suppress(RuntimeFailure):
            self.send_command(name)

    def detach(self) -> None:
        """Leave the run running; close the connection."""
        if self.detached:
            return
        self.detached = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
