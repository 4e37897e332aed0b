"""The ``--scheduler`` address: parsed and checked before anything starts, then probed with bounded waits.

Two questions, asked apart so each ends in one line naming the address:

- ``scheduler_address(text)`` (exit 2): can memtui use this address at all? ``tcp://HOST:PORT`` (or
  ``HOST:PORT``), and ``tls://HOST:PORT`` when Dask's client TLS files are configured; nothing else
  (``inproc://`` is another process's memory, ``ucx://``, ``ws://`` are not what memtui runs on).
- ``probe(address, ...)`` (exit 1): does a Dask scheduler answer there? A TCP connect with a
  deadline, then the first message a Dask server sends on every connection (its handshake: a small
  msgpack dict), read with a deadline and a size cap. A closed port, a listener that says nothing (the
  dashboard's port, a typo) and one that speaks something else each end in one line within
  ``PROBE_S``; Dask's own connect, which waits for ever on a silent peer and allocates whatever size a
  garbage header claims, only ever sees an address that answered as Dask does.

No Dask import at module load: the CLI checks the address before it loads anything.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memtui.cluster.bounded import Late, Stopped, bounded
from memtui.errors import RuntimeFailure, UsageError

#: The longest a probe waits (connect and handshake together).
PROBE_S = 15.0  # MEMTUI_PROBE_WAIT sets it for a run (cluster/engine.py)
#: A Dask handshake is about 60 bytes; anything claiming more than this is not one.
HANDSHAKE_MAX_BYTES = 64 * 1024
SCHEMES = ("tcp", "tls")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")
_TLS_HOW = (
    "set the client's TLS files in Dask's config (DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT and __KEY), or use tcp://HOST:PORT"
)


@dataclass(frozen=True)
class SchedulerAddress:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse(text: str) -> SchedulerAddress:
    """``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT``; UsageError (exit 2) naming what is wrong."""
    where = f"--scheduler {text!r}"
    example = "e.g. tcp://10.0.0.5:8786"
    if not text or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise UsageError(f"{where}: not an address; pass tcp://HOST:PORT ({example})")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(
            f"{where}: memtui connects to a scheduler over tcp:// or tls://, not {scheme}://; "
            f"pass tcp://HOST:PORT ({example})"
        )
    if rest.startswith("["):  # [IPv6]:PORT
        host, close, port_text = rest[1:].partition("]")
        if not close or not port_text.startswith(":"):
            raise UsageError(f"{where}: an IPv6 host goes in brackets with its port: {scheme}://[::1]:8786")
        port_text = port_text[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"{where}: {host!r} is not an IPv6 address") from None
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            raise UsageError(f"{where}: no port; pass {scheme}://{rest or 'HOST'}:PORT (a scheduler's is often 8786)")
        if not _HOSTNAME.match(host):
            raise UsageError(f"{where}: {host!r} is not a host name or address; pass {scheme}://HOST:PORT ({example})")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise UsageError(f"{where}: the port {port_text!r} is not a number from 1 to 65535 ({example})")
    return SchedulerAddress(scheme, host, int(port_text))


def scheduler_address(text: str) -> str:
    """The address as Dask takes it, checked (exit 2 for one memtui cannot use), before any work starts."""
    address = parse(text)
    if address.scheme == "tls" and _tls_context() is None:
        raise UsageError(f"--scheduler {text!r}: a tls:// scheduler needs this client's certificate: {_TLS_HOW}")
    return str(address)


def _tls_context() -> Any:
    """The SSL context Dask's config gives a client (None without its TLS files)."""
    from distributed.security import Security  # noqa: PLC0415 - only for tls://

    try:
        return Security().get_connection_args("client").get("ssl_context")
    except (OSError, ValueError) as exc:  # a configured file that cannot be read
        raise UsageError(f"Dask's client TLS configuration cannot be used ({exc}): {_TLS_HOW}") from None


def probe(text: str, *, timeout_s: float = PROBE_S, stopped: Callable[[], bool] = lambda: False) -> bool:
    """Whether a Dask scheduler answers at ``text`` (checked by ``scheduler_address``): True if it does,
    False if ``stopped()`` became true meanwhile; RuntimeFailure (exit 1), in one line, if it does not."""
    address = parse(text)
    deadline = time.monotonic() + timeout_s
    check = "check the address and that 'dask scheduler' runs there (its port, often 8786, not the dashboard's)"
    try:
        infos = bounded(
            lambda: socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM),
            timeout_s=timeout_s,
            stopped=stopped,
            name="memtui-resolve",
        )
    except Stopped:
        return False
    except (OSError, Late) as exc:
        raise RuntimeFailure(f"scheduler {address}: cannot resolve {address.host!r} ({exc}); {check}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(0.2)  # short steps: a stop is noticed within one
        while True:
            try:
                error = sock.connect_ex(sockaddr)
            except OSError as exc:
                error = exc.errno or -1
            if error in (0, 106):  # EISCONN: a step before this one connected
                break
            if error not in (11, 114, 115):  # not EAGAIN, EALREADY, EINPROGRESS: refused, unreachable, ...
                raise RuntimeFailure(f"scheduler {address}: cannot connect ({_strerror(error)}); {check}")
            if stopped():
                return False
            if time.monotonic() >= deadline:
                raise RuntimeFailure(f"scheduler {address}: no connection within {timeout_s:.0f} s; {check}")
            time.sleep(0.05)
        if address.scheme == "tls":
            sock.settimeout(max(0.2, deadline - time.monotonic()))  # the TLS handshake, within the deadline
            sock = _tls_context().wrap_socket(sock, server_hostname=None)  # Dask's own client context
            sock.settimeout(0.2)
        head = _read(sock, 8, deadline, stopped, address, timeout_s, check)
        if head is None:
            return False
        (size,) = struct.unpack("<Q", head)
        if not 16 <= size <= HANDSHAKE_MAX_BYTES:
            raise RuntimeFailure(f"scheduler {address}: answered, but not as a Dask scheduler; {check}")
        body = _read(sock, size, deadline, stopped, address, timeout_s, check)
        if body is None:
            return False
        if not _is_handshake(body):
            raise RuntimeFailure(f"scheduler {address}: answered, but not as a Dask scheduler; {check}")
        return True
    except OSError as exc:  # reset, TLS refused
        raise RuntimeFailure(f"scheduler {address}: the connection failed ({exc}); {check}") from None
    finally:
        sock.close()


def _read(
    sock: socket.socket,
    n: int,
    deadline: float,
    stopped: Callable[[], bool],
    address: SchedulerAddress,
    timeout_s: float,
    check: str,
) -> bytes | None:
    """Exactly ``n`` bytes by the deadline (None if stopped meanwhile)."""
    data = b""
    while len(data) < n:
        if stopped():
            return None
        if time.monotonic() >= deadline:
            raise RuntimeFailure(
                f"scheduler {address}: connected, but no Dask handshake within {timeout_s:.0f} s; {check}"
            )
        try:
            chunk = sock.recv(n - len(data))
        except TimeoutError:
            continue
        if not chunk:
            raise RuntimeFailure(f"scheduler {address}: closed the connection without a Dask handshake; {check}")
        data += chunk
    return data


def _is_handshake(body: bytes) -> bool:
    """Dask's framing (a count, the lengths, the frames) around a msgpack dict naming the peer's Python."""
    import msgpack  # type: ignore[import-untyped]  # noqa: PLC0415 - a dependency of distributed

    if len(body) < 16:
        return False
    (count,) = struct.unpack_from("<Q", body)
    if not 1 <= count <= 16 or len(body) < 8 + 8 * count:
        return False
    lengths = struct.unpack_from(f"<{count}Q", body, 8)
    start = 8 + 8 * count
    if start + sum(lengths) > len(body):
        return False
    try:
        first = msgpack.loads(body[start : start + lengths[0]], raw=False)
    except Exception:
        return False
    return isinstance(first, dict) and "python" in first


def _strerror(error: int) -> str:
    import os  # noqa: PLC0415

    return os.strerror(error) if error > 0 else "an error"
