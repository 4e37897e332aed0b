"""``memtui.run_job``: a user's function under the guard, from their own script.

Reads next to MemoryMonitor and SmartBatchProcessor: ``SmartBatchProcessor`` guards a loop in the
caller's process and keeps nothing; ``run_job`` gives the function the whole of ``memtui run --job``:
the admission, the cleanups (``memtui.on_cleanup``), the results file and its resume, and a face (the
TUI on a terminal, log lines otherwise). The items are spooled to a private nameless file as they come
(an iterator of any length is never held in memory), then worked as the CLI works a file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from memtui.jobs.user.executor import DEFAULT_CALL_ITEMS, FunctionExecutor
from memtui.jobs.user.items import ItemJob

#: After a stop, how long the call in flight may take before the run ends without it (``--stop-grace``).
DEFAULT_STOP_GRACE_S = 30.0


def build_job_runner(
    fn: Callable[[list[Any]], Any],
    name: str,
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    monitor: Any,
    *,
    call_items: int = DEFAULT_CALL_ITEMS,
    strict: bool = False,
    spec: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    stop_grace_s: float = DEFAULT_STOP_GRACE_S,
) -> Any:
    """The Runner (memtui.runner) over an ItemJob: the one engine of the CLI and the API. With ``workers`` or
    ``scheduler``, a ClusterRunner: each piece of items is a task on a guarded Dask worker, which imports
    ``spec`` (MODULE:FUNCTION) itself; the client stays the results file's single writer."""
    from memtui.embed import companions  # noqa: PLC0415
    from memtui.memory.headroom import HeadroomWatch  # noqa: PLC0415
    from memtui.runner import Runner  # noqa: PLC0415
    from memtui.trace import RunTrace  # noqa: PLC0415

    executor = FunctionExecutor(fn, name, call_items=call_items)
    job = ItemJob(input_path, output, executor, strict=strict)
    trace = RunTrace(companions.trace_path(Path(output)))
    if workers is None and scheduler is None:
        runner = Runner(job, monitor, trace=trace, headroom=HeadroomWatch())
        runner.stop_grace_s = stop_grace_s
        return runner
    import functools  # noqa: PLC0415

    from memtui.cluster.engine import ClusterRunner  # noqa: PLC0415
    from memtui.cluster.plugin import run_items  # noqa: PLC0415

    if spec is None:
        raise ValueError("a cluster job needs spec='MODULE:FUNCTION' (the workers import it)")
    task = functools.partial(run_items, spec, call_items)
    runner = ClusterRunner(job, monitor, workers=workers, scheduler=scheduler, trace=trace, task=task)
    runner.stop_grace_s = stop_grace_s  # beyond the cluster's own STOP_GRACE_S: a client stuck anywhere ends
    return runner


def run_job(
    fn: Callable[[list[Any]], Any],
    items: Iterable[dict[str, Any]] | str | os.PathLike[str],
    *,
    output: str | os.PathLike[str],
    max_memory: str | float | None = None,
    warning_memory: str | float | None = None,
    batch: int = DEFAULT_CALL_ITEMS,
    face: str = "auto",
    stop_grace_s: float = DEFAULT_STOP_GRACE_S,
) -> dict[str, Any]:
    """Run ``fn`` (a list of item dicts -> one JSON result per item, in order) over ``items`` into ``output``.

    ``items``: dicts (their ``id`` is their key, else a hash of their content) or the path of a JSON Lines
    file. ``batch``: items per call. ``face``: "auto" (the TUI on a terminal, else log lines on stderr),
    "tui", "headless" or "quiet". ``stop_grace_s``: after a stop (Ctrl-C), how long a call may take before the
    run reports interrupted without it (the call's thread is left running).
    Returns the run report as a dict (``status``: success, partial, ...).
    Raises MemtuiError for a bad input or results file, before any work."""
    from memtui.faces.headless import HeadlessFace, parts_for  # noqa: PLC0415
    from memtui.memory.config_layers import resolve_config  # noqa: PLC0415
    from memtui.memory.monitor import MemoryMonitor  # noqa: PLC0415
    from memtui.memory.probe import discover_limit  # noqa: PLC0415
    from memtui.records import report_dict  # noqa: PLC0415

    if face not in ("auto", "tui", "headless", "quiet"):
        raise ValueError(f"face must be auto, tui, headless or quiet, not {face!r}")
    name = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
    limit = discover_limit()
    flags: dict[str, Any] = {"max-memory": max_memory, "warning-memory": warning_memory}
    config, thresholds = resolve_config(
        file=None,
        flags={k: v for k, v in flags.items() if v is not None},
        limit_bytes=limit.bytes or None,
        limit_source=limit.source,
    )
    monitor = MemoryMonitor(config, limit=limit)
    monitor.thresholds = thresholds
    spool = None
    if isinstance(items, (str, os.PathLike)):
        source: str | os.PathLike[str] = Path(items)
    else:
        spool = _spool(items)
        source = f"/proc/self/fd/{spool.fileno()}"
    try:
        runner = build_job_runner(fn, name, source, output, monitor, call_items=batch, stop_grace_s=stop_grace_s)
        runner.open()
        if face == "quiet":
            report = runner.run()
        elif face == "tui" or (face == "auto" and sys.stdout.isatty() and sys.stdin.isatty()):
            from memtui.faces.tui import run_tui  # noqa: PLC0415 - Textual loads only for the TUI

            report = run_tui(runner)
        else:
            report = HeadlessFace(runner, parts=parts_for(runner)).run()
    finally:
        if spool is not None:
            spool.close()
    return report_dict(report)


def _spool(items: Iterable[dict[str, Any]]) -> Any:
    """The items as JSON Lines in an unnamed temporary file (no name to attack; gone on close)."""
    spool = tempfile.TemporaryFile(prefix="memtui-items-")  # noqa: SIM115 - the caller closes it
    try:
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise TypeError(f"run_job items must be dicts; item {index} is a {type(item).__name__}")
            spool.write(json.dumps(item).encode() + b"\n")
        spool.flush()
    except BaseException:
        spool.close()
        raise
    return spool
