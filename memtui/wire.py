"""The wire form: engine snapshots, events and commands as versioned JSON.

What a face reads from an engine in the same process (frozen dataclasses) it
can read from another process or machine in this form: a remote viewer of a
detached run, a Dask worker reporting to its client. A message is

    {"memtui_wire": 1, "kind": "snapshot" | "delta" | "event" | "command" | "report" | "hello" | "reply", "body": ...}

("hello" opens an attach connection: the run's id, engine kind and commands;
"reply" answers a viewer's "command": ok, or the error it raised; "delta" is a
snapshot whose histories hold only new samples: memtui.attach.delta.)

and a body encodes dataclasses as ``{"__type__": "Name", field: value, ...}``,
enums as ``{"__enum__": "Name", "value": ...}``, tuples as lists (restored from
the field's annotation on the way back). Only the types named in ``TYPES`` are
ever built from the wire: decoding runs no code named by the data.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import types
import typing
from functools import cache
from typing import Any

WIRE_VERSION = 1
KINDS = ("snapshot", "delta", "event", "command", "report", "hello", "reply")

#: Every type the wire carries: its name on the wire -> where it lives (imported only when met).
TYPES: dict[str, str] = {
    # the memory core
    "MemorySnapshot": "memtui.memory.monitor",
    "BreakerSnapshot": "memtui.memory.breaker",
    "BreakerState": "memtui.memory.breaker",
    "MemoryLimit": "memtui.memory.probe",
    "Headroom": "memtui.memory.headroom",
    "CleanupReport": "memtui.memory.cleanup",
    # the embedding engine
    "RunSnapshot": "memtui.runner",
    "RunReport": "memtui.records",
    "WorkerRow": "memtui.records",
    "PhaseChanged": "memtui.events",
    "BatchStarted": "memtui.events",
    "BatchDone": "memtui.events",
    "BreakerChanged": "memtui.events",
    "MemoryWarning": "memtui.events",
    "CleanupRan": "memtui.events",
    "WorkerDone": "memtui.events",
    "Notice": "memtui.events",
    "RunFinished": "memtui.events",
    # the monitor engine
    "MonitorSnapshot": "memtui.jobs.monitor.engine",
    "Policy": "memtui.jobs.monitor.intervene",
    "TargetSnapshot": "memtui.jobs.monitor.tracker",
    "TargetState": "memtui.jobs.monitor.tracker",
    "Action": "memtui.jobs.monitor.tracker",
    "TargetSampled": "memtui.jobs.monitor.events",
    "TargetWarning": "memtui.jobs.monitor.events",
    "TargetBreakerChanged": "memtui.jobs.monitor.events",
    "TargetActed": "memtui.jobs.monitor.events",
    "TargetGone": "memtui.jobs.monitor.events",
    "TargetAdded": "memtui.jobs.monitor.events",
    "MonitorFinished": "memtui.jobs.monitor.events",
    "MonitorReport": "memtui.records",
}


class WireError(ValueError):
    """A message that is not memtui's wire form, of another version, or naming an unknown type."""


@cache
def _type(name: str) -> type:
    if name not in TYPES:
        raise WireError(f"unknown type {name!r} on the wire")
    cls = getattr(importlib.import_module(TYPES[name]), name)
    if not (dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum)):
        raise WireError(f"{name} is not a wire type")
    return cls


def encode(value: Any) -> Any:
    """A JSON-ready form of ``value`` (dataclasses and enums of ``TYPES``, tuples, dicts, scalars)."""
    if isinstance(value, enum.Enum):
        return {"__enum__": type(value).__name__, "value": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if name not in TYPES:
            raise WireError(f"{name} is not a wire type; add it to memtui.wire.TYPES")
        body = {"__type__": name}
        body.update({f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)})
        return body
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise WireError(f"cannot put a {type(value).__name__} on the wire")


def decode(data: Any, hint: Any = Any) -> Any:
    """The value ``encode`` made ``data`` from; ``hint`` (a type annotation) restores tuples."""
    if isinstance(data, dict):
        if "__enum__" in data:
            return _type(data["__enum__"])(data["value"])
        if "__type__" in data:
            cls = _type(data["__type__"])
            hints = _hints(cls)
            kwargs = {
                f.name: decode(data[f.name], hints.get(f.name, Any)) for f in dataclasses.fields(cls) if f.name in data
            }
            return cls(**kwargs)
        value_hint = _args(hint)[1] if _origin(hint) is dict and len(_args(hint)) == 2 else Any
        return {k: decode(v, value_hint) for k, v in data.items()}
    if isinstance(data, list):
        if _origin(hint) is tuple:
            args = _args(hint)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(decode(v, args[0]) for v in data)
            if args and len(args) == len(data):
                return tuple(decode(v, a) for v, a in zip(data, args))
            return tuple(decode(v) for v in data)
        item = _args(hint)[0] if _origin(hint) is list and _args(hint) else Any
        return [decode(v, item) for v in data]
    return data


def _origin(hint: Any) -> Any:
    """tuple/list/dict for a generic alias; for ``X | None``, the origin of X."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _origin(inner[0]) if len(inner) == 1 else None
    return origin


def _args(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _args(inner[0]) if len(inner) == 1 else ()
    return typing.get_args(hint)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# -- messages ---------------------------------------------------------------------------


def message(kind: str, body: Any) -> dict[str, Any]:
    if kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r}")
    return {"memtui_wire": WIRE_VERSION, "kind": kind, "body": encode(body)}


def dumps(kind: str, body: Any) -> str:
    """One message as one line of JSON (no newline inside: a stream is JSON Lines)."""
    return json.dumps(message(kind, body), separators=(",", ":"))


def loads(line: str | bytes) -> tuple[str, Any]:
    """(kind, decoded body) of one message; WireError for anything else."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise WireError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or "memtui_wire" not in data:
        raise WireError("not a memtui wire message")
    if data["memtui_wire"] != WIRE_VERSION:
        raise WireError(f"wire version {data['memtui_wire']!r}; this memtui speaks version {WIRE_VERSION}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r}")
    return kind, decode(data.get("body"))
