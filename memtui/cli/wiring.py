"""The wiring of a run: the memory config, the engine (cache, embeddings, a user's job, monitor, cluster),
the checks before any work, then a face, its summary and the report.

Headless, the log and summary go to stderr and the JSON report to stdout; after the TUI, the summary goes
to stdout (``run_face``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memtui import early_log
from memtui.cli.report import check_report_path, protected_paths, write_report
from memtui.embed import companions
from memtui.errors import MemtuiError, UsageError
from memtui.faces.choice import choose_face
from memtui.memory.config_layers import SETTINGS, resolve_config
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.probe import discover_limit
from memtui.output import stream_fd
from memtui.paths import SAMPLE_INPUT, default_cache, default_config
from memtui.records import report_dict
from memtui.stdio import dead_end_safe_stdio, write_line

if TYPE_CHECKING:
    from memtui.engine import Engine
    from memtui.jobs.monitor.engine import MonitorEngine
    from memtui.runner import Runner


def make_monitor(args: argparse.Namespace) -> MemoryMonitor:
    limit = discover_limit()
    flags = {setting: getattr(args, setting.replace("-", "_")) for setting in SETTINGS}
    config_file = args.config or default_config()
    floor = None
    if args.mode not in ("monitor", "job"):  # a default warning/reset level below the model's need could never clear
        from memtui.embed.footprint import estimate  # noqa: PLC0415 - file sizes only, no torch

        floor = estimate(args.model, _backend(args)).need_bytes
    config, thresholds = resolve_config(
        file=config_file, flags=flags, limit_bytes=limit.bytes or None, limit_source=limit.source, floor_bytes=floor
    )
    monitor = MemoryMonitor(config, limit=limit)
    monitor.thresholds = thresholds  # the run report's "thresholds"
    return monitor


def _backend(args: argparse.Namespace) -> str:
    """The backend the run will load (the need before loading follows it); a bad name fails later, in one line."""
    from memtui.embed.backends import resolve_backend  # noqa: PLC0415

    try:
        return resolve_backend(getattr(args, "backend", None), args.config or default_config())
    except MemtuiError:
        return "torch"


def resolve_input(path: Path | None) -> Path:
    if path is not None:
        return path
    if not SAMPLE_INPUT.exists():
        raise UsageError(f"no --input given and the bundled sample {SAMPLE_INPUT} is missing; pass --input FILE.jsonl")
    return SAMPLE_INPUT


def run(args: argparse.Namespace) -> int:
    early_log.install()  # what the setup logs reaches the TUI's log too (run_face takes it)
    monitor = make_monitor(args)
    check_report_path(args.report, protected=protected_paths(args))
    _check_theme_file(args.theme)
    _check_keymap(args)
    if args.mode == "job":
        return run_face(args, _open_job_runner(args, monitor, thresholds=monitor.thresholds))
    if (getattr(args, "workers", None) or getattr(args, "scheduler", None)) and args.mode != "cache":
        raise UsageError("--workers and --scheduler go with --mode cache")
    if getattr(args, "workers", None) and getattr(args, "scheduler", None):
        raise UsageError("pass --workers N (a local cluster) or --scheduler ADDRESS (an existing one), not both")
    if getattr(args, "scheduler", None):  # an address memtui cannot use: exit 2 before any work
        from memtui.cluster import require_distributed  # noqa: PLC0415
        from memtui.cluster.address import scheduler_address  # noqa: PLC0415

        require_distributed()
        args.scheduler = scheduler_address(args.scheduler)
    thresholds = monitor.thresholds
    assert thresholds is not None  # make_monitor resolved them
    if args.mode == "monitor":
        thresholds.log()  # defaults lowered to fit the limit, or levels typed above it
        return run_face(args, build_monitor_engine(args, monitor))  # UsageError (exit 2) if no target exists
    if args.texts is not None and args.mode != "embeddings":
        raise UsageError("--texts goes with --mode embeddings; use --limit N for the first N domains")
    runner = build_runner(args, monitor)
    try:
        with _scan_log():
            runner.open()  # bad input, cache or config fails here, in one line, before any face starts
        progress = runner.snapshot()
        cluster = getattr(args, "workers", None) or getattr(args, "scheduler", None)  # workers load the model
        if progress.items_done < progress.items_total and not cluster:  # a complete cache loads no model
            from memtui.embed.footprint import require_room  # noqa: PLC0415

            lowered = monitor.config.max_bytes if thresholds.breaker_lowered else None
            require_room(monitor.limit, args.model, lowered_breaker_bytes=lowered, backend=_backend(args))
        thresholds.log()  # defaults lowered to fit the limit, or levels typed above it
    except MemtuiError:
        runner.job.close()
        raise
    return run_face(args, runner)


def _open_job_runner(args: argparse.Namespace, monitor: MemoryMonitor, *, thresholds: Any) -> Runner:
    """Mode job: the user's function over --input into --output (memtui.jobs.user), opened before any face."""
    from memtui.faces.run_job import build_job_runner  # noqa: PLC0415

    fn, name = args.job_function
    cluster = {"workers": getattr(args, "workers", None), "scheduler": getattr(args, "scheduler", None)}
    if cluster["workers"] and cluster["scheduler"]:
        raise UsageError("pass --workers N (a local cluster) or --scheduler ADDRESS (an existing one), not both")
    if cluster["scheduler"]:
        from memtui.cluster import require_distributed  # noqa: PLC0415
        from memtui.cluster.address import scheduler_address  # noqa: PLC0415

        require_distributed()
        cluster["scheduler"] = scheduler_address(cluster["scheduler"])
    if cluster["workers"] or cluster["scheduler"]:
        from memtui.cluster import require_distributed  # noqa: PLC0415

        require_distributed()
    runner = build_job_runner(
        fn,
        name,
        resolve_input(args.input),
        args.output,
        monitor,
        call_items=args.job_batch,
        strict=args.strict,
        spec=args.job,
        stop_grace_s=args.stop_grace,
        **cluster,
    )
    try:
        with _scan_log():
            runner.open()
        thresholds.log()
    except MemtuiError:
        runner.job.close()
        raise
    return runner


@contextlib.contextmanager
def _scan_log() -> Iterator[None]:
    """The scan runs before any face: its progress lines (jobs/scan_progress.py) go to stderr meanwhile.

    The early-log keeper (memtui.early_log) keeps them for the TUI but prints only warnings: it is not a
    face's logging, so the lines still go to stderr beside it."""
    logger = logging.getLogger("memtui")
    if any(not early_log.is_keeper(h) for h in logger.handlers):
        yield
        return
    from memtui.faces.headless import setup_logging  # noqa: PLC0415

    saved = logger.level, logger.propagate
    handler = setup_logging(sys.stderr)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _check_keymap(args: argparse.Namespace) -> None:
    """The config file's [keys] table is read before any work, so a bad key fails in one line (exit 2)."""
    from memtui.tui.keymap import load_keymap  # noqa: PLC0415 - pure: no Textual

    load_keymap(args.config or default_config())


def _check_theme_file(theme: str | None) -> None:
    """A --theme PATH.toml is read before any work, so a typo fails in one line, not after the scan."""
    if theme is None:
        return
    from memtui.tui.theming import is_theme_file, load_theme  # noqa: PLC0415 - Textual loads only with --theme

    if is_theme_file(theme):
        load_theme(Path(theme).expanduser())


def run_face(args: argparse.Namespace, engine: Engine) -> int:
    """Run an engine under the TUI (on a terminal, or --tui) or headless; print its summary; write --report.

    Headless, the log and summary go to stderr and the JSON report to stdout, so
    ``memtui run > report.json`` works; after the TUI, the summary goes to stdout.
    """
    from memtui.faces.headless import HeadlessFace, parts_for, setup_logging  # noqa: PLC0415

    parts = parts_for(engine)
    early = early_log.take()  # the setup's lines (warnings already printed): the TUI logs them

    use_tui = choose_face(args.tui, args.headless) == "tui"
    from memtui.attach.commands import serve  # noqa: PLC0415

    server = serve(args, engine)  # any run can be attached to ('memtui attach'); None if it cannot
    with dead_end_safe_stdio():  # a terminal that went away (EIO) or a closed pipe (EPIPE) loses lines, not the exit
        if use_tui:
            core_log = logging.getLogger("memtui")  # never write over the screen
            core_log.addHandler(logging.NullHandler())
            core_log.propagate = False
            from memtui.faces.tui import run_tui  # noqa: PLC0415 - Textual loads only for the TUI
            from memtui.tui.keymap import load_keymap  # noqa: PLC0415

            keymap = load_keymap(args.config or default_config())  # checked before any work (run)
            report, out = run_tui(engine, theme=args.theme, early=early, keymap=keymap), sys.stdout
        else:
            setup_logging()
            report, out = HeadlessFace(engine, parts=parts).run(), sys.stderr
        for line in parts.summary(report):
            write_line(out, line)
        if not use_tui:
            write_line(sys.stdout, json.dumps(report_dict(report), indent=2))
    if server is not None:
        server.finish(report)  # viewers get the report before the socket goes
    if args.report and not (stream_fd(args.report) == 1 and not use_tui):  # headless: it is on stdout already
        write_report(args.report, report)  # after a finished run, a failure here is exit 1, not a lost run
    if getattr(engine, "abandoned", False):  # a stop's grace ran out: the job's thread hangs in its code
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(report.exit_code)  # nothing may wait on that thread (exit's joins, atexit hooks)
    return report.exit_code


def build_monitor_engine(args: argparse.Namespace, monitor: MemoryMonitor) -> MonitorEngine:
    """Monitor mode: resolve the targets (UsageError if there are none) and build the engine from the flags."""
    from memtui.jobs.monitor.engine import MonitorEngine  # noqa: PLC0415 - only this mode needs it
    from memtui.jobs.monitor.targets import Selection, discover, find_matching  # noqa: PLC0415
    from memtui.memory.pid_probe import PidProbe  # noqa: PLC0415

    selection = Selection(
        pids=tuple(args.pid), match=args.match, children=args.children, all_users=getattr(args, "all_users", False)
    )
    probes = discover(selection)
    rescan: Callable[[set[int]], list[PidProbe]] | None = None
    if selection.match is not None:
        pattern = selection.match

        def find_new(known: set[int]) -> list[PidProbe]:
            return find_matching(pattern, selection.children, skip=known, all_users=selection.all_users)

        rescan = find_new

    return MonitorEngine(
        probes,
        monitor.config,
        interval_s=args.monitor_interval,
        duration_s=args.duration,
        policy=args.on_breaker,
        children=args.children,
        selection=selection.describe(),
        # A --match watch waits for new matches, the default list refills; explicit pids end when all exited.
        end_when_all_exit=selection.match is None,
        rescan=rescan,
        top=selection.top(),  # the default list is re-ranked live
        limit=monitor.limit,
        signal_other_users=getattr(args, "signal_other_users", False),
    )


def build_runner(args: argparse.Namespace, monitor: MemoryMonitor) -> Runner:
    from memtui.embed.backends import resolve_backend  # noqa: PLC0415
    from memtui.embed.model import Embedder  # noqa: PLC0415 - keeps `memtui --help` fast
    from memtui.jobs.cache import CacheJob  # noqa: PLC0415
    from memtui.memory.headroom import HeadroomWatch  # noqa: PLC0415
    from memtui.runner import Runner  # noqa: PLC0415
    from memtui.trace import RunTrace  # noqa: PLC0415

    embedder = Embedder(args.model, backend=resolve_backend(args.backend, args.config or default_config()))
    embedder.check()
    texts = (args.texts or 1000) if args.mode == "embeddings" else None
    job = CacheJob(
        resolve_input(args.input),
        args.cache or default_cache(),
        embedder,
        model_id=embedder.model_id,
        mode=args.mode,
        limit_domains=args.limit,
        limit_texts=texts,
        strict=args.strict,
    )
    if getattr(args, "workers", None) or getattr(args, "scheduler", None):
        from memtui.cluster import require_distributed  # noqa: PLC0415

        require_distributed()
        from memtui.cluster.engine import ClusterRunner  # noqa: PLC0415

        return ClusterRunner(
            job,
            monitor,
            workers=args.workers,
            scheduler=args.scheduler,
            model=job.model_id,
            backend=embedder.backend,
            trace=RunTrace(companions.trace_path(Path(job.cache_path))),
        )
    # The system, cgroup and RLIMIT_AS headroom is this process's: a cluster's workers live in their own.
    return Runner(job, monitor, trace=RunTrace(companions.trace_path(Path(job.cache_path))), headroom=HeadroomWatch())
