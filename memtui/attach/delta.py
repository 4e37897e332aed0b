"""Snapshot deltas: a viewer gets the minute of memory history once, then only the samples that are new.

A snapshot carries whole histories (the Runner's memory history, each monitor
target's): sent to every viewer a few times a second they were most of the bytes
and most of the encoding and decoding on both sides. So the server sends a full
"snapshot" when a viewer attaches or is resynced, and otherwise "delta"
messages whose body is ``{"snapshot": the snapshot with each history cut to the
samples after the previous period's last one, "history_len": {key: the full
history's length}}``. A viewer joins each cut history to the one it holds
(skipping samples it already has) and keeps the last ``history_len`` samples:
the same history the run holds, whatever the order in which a viewer's first
full snapshot and the deltas were taken.

One rule (``join``), over two forms of a snapshot: decoded dataclasses (the
RemoteEngine) and their wire JSON (``attach --json``, which hands scripts full
snapshots without decoding them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["JsonSnapshots", "apply", "apply_json", "cut", "join", "since"]

Sample = Sequence[float]  # (time, rss bytes): a tuple decoded, a list in JSON


def join(held: Sequence[Sample], new: Sequence[Sample], length: int) -> list[Sample]:
    """``held`` followed by the samples of ``new`` after its last one, cut to the last ``length``."""
    if length <= 0:
        return []
    last = held[-1][0] if held else None
    fresh = [s for s in new if last is None or s[0] > last]
    return [*held, *fresh][-length:]


def _after(history: Sequence[Sample], t: float) -> Sequence[Sample]:
    i = len(history)
    while i and history[i - 1][0] > t:
        i -= 1
    return history[i:]


# -- decoded snapshots (RunSnapshot: memory.history; MonitorSnapshot: each target's) -------------


def _histories(snapshot: Any) -> dict[str, Sequence[Sample]]:
    memory = getattr(snapshot, "memory", None)
    if memory is not None:
        return {"memory": memory.history}
    return {f"target:{t.pid}": t.history for t in getattr(snapshot, "targets", ())}


def _with_histories(snapshot: Any, histories: Mapping[str, Sequence[Sample]]) -> Any:
    if "memory" in histories:
        memory = dataclasses.replace(snapshot.memory, history=tuple(map(tuple, histories["memory"])))
        return dataclasses.replace(snapshot, memory=memory)
    if not hasattr(snapshot, "targets"):
        return snapshot
    targets = tuple(
        dataclasses.replace(t, history=tuple(map(tuple, histories.get(f"target:{t.pid}", t.history))))
        for t in snapshot.targets
    )
    return dataclasses.replace(snapshot, targets=targets)


def since(snapshot: Any) -> dict[str, float]:
    """The time of each history's last sample: where the next delta starts."""
    return {key: h[-1][0] for key, h in _histories(snapshot).items() if h}


def cut(snapshot: Any, after: dict[str, float]) -> tuple[Any, dict[str, int]]:
    """(the server) ``snapshot`` with each history cut to the samples after ``after[key]``, and the full lengths."""
    full = _histories(snapshot)
    cut_histories = {key: _after(h, after[key]) if key in after else h for key, h in full.items()}
    return _with_histories(snapshot, cut_histories), {key: len(h) for key, h in full.items()}


def apply(held: Any, delta_snapshot: Any, lengths: dict[str, int]) -> Any:
    """(a viewer) the full snapshot: ``delta_snapshot`` with its histories joined to those of ``held``."""
    before = _histories(held)
    joined = {
        key: join(before.get(key, ()), h, int(lengths.get(key, len(h))))
        for key, h in _histories(delta_snapshot).items()
    }
    return _with_histories(delta_snapshot, joined)


# -- the same in wire JSON (bodies as memtui.wire.encode makes them) --------------------------


def _json_histories(body: dict[str, Any]) -> dict[str, Sequence[Sample]]:
    memory = body.get("memory")
    if isinstance(memory, dict):
        return {"memory": memory["history"]}
    return {f"target:{t['pid']}": t["history"] for t in body.get("targets") or ()}


def _json_with_histories(body: dict[str, Any], histories: Mapping[str, Sequence[Sample]]) -> dict[str, Any]:
    if "memory" in histories:
        return {**body, "memory": {**body["memory"], "history": histories["memory"]}}
    if "targets" not in body:
        return body
    targets = [{**t, "history": histories.get(f"target:{t['pid']}", t["history"])} for t in body["targets"]]
    return {**body, "targets": targets}


def apply_json(held: dict[str, Any], delta_body: dict[str, Any], lengths: dict[str, int]) -> dict[str, Any]:
    """``apply`` on wire JSON: a full snapshot's body from the last one and a delta's "snapshot"."""
    before = _json_histories(held)
    joined = {
        key: join(before.get(key, ()), h, int(lengths.get(key, len(h))))
        for key, h in _json_histories(delta_body).items()
    }
    return _json_with_histories(delta_body, joined)


class JsonSnapshots:
    """``attach --json``'s side: each delta as the full snapshot's JSON text, made fast.

    Re-serializing the whole history (600 floats and ints) for every frame was most of a JSON
    viewer's cost; each sample's text is made once and the body around the histories is small."""

    def __init__(self) -> None:
        self.held: dict[str, Any] | None = None
        self._texts: dict[float, str] = {}

    def full(self, body: dict[str, Any]) -> None:
        self.held = body

    def delta(self, delta_body: dict[str, Any], lengths: dict[str, int]) -> str | None:
        """The full snapshot's body as JSON text; None before any full snapshot."""
        if self.held is None:
            return None
        self.held = held = apply_json(self.held, delta_body, lengths)
        histories = _json_histories(held)
        marks = {key: f"\0{key}" for key in histories}
        text = json.dumps(_json_with_histories(held, marks), separators=(",", ":"))  # type: ignore[arg-type]
        texts: dict[float, str] = {}
        for key, history in histories.items():
            mark = json.dumps(marks[key])
            if text.count(mark) != 1:  # a body string that happens to hold the mark: the plain way
                return json.dumps(held, separators=(",", ":"))
            samples = ",".join(self._sample_text(s, texts) for s in history)
            text = text.replace(mark, f"[{samples}]")
        self._texts = texts  # only the samples still held
        return text

    def _sample_text(self, sample: Sample, texts: dict[float, str]) -> str:
        t = sample[0]
        text = self._texts.get(t) or json.dumps(sample, separators=(",", ":"))
        texts[t] = text
        return text
