"""Command line: argument parsing, config layering, choosing a face, exit codes.

Exit codes: 0 done; 1 failed or aborted by the breaker (after committing);
2 bad input or usage; 130 interrupted (Ctrl-C, SIGTERM or quit, after committing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memtui import __version__, early_log
from memtui.embed import companions
from memtui.errors import MemtuiError, RuntimeFailure, UsageError
from memtui.faces.choice import choose_face
from memtui.jobs.source import STDIN_NAMES
from memtui.memory.config import DURATION_MAX_S, MemoryConfig
from memtui.memory.config_layers import SETTINGS, env_name, resolve_config
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.probe import discover_limit
from memtui.output import check_output, stream_fd, write_output
from memtui.paths import SAMPLE_INPUT, default_cache, default_config
from memtui.records import Report, report_dict
from memtui.stdio import dead_end_safe_stdio, fill_closed_std_fds, write_line

if TYPE_CHECKING:
    from memtui.engine import Engine
    from memtui.jobs.monitor.engine import MonitorEngine
    from memtui.runner import Runner

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

SETTING_HELP = {
    "max-memory": "circuit breaker: no new batch at or above this",
    "warning-memory": "warning: batch size drops to the minimum",
    "reset-memory": "an open breaker half-opens below this (None = the warning level)",
    "reset-hold-max": "the longest reset hold, after repeated trips",
    "warning-hysteresis": "warning clears this fraction below its level",
    "backoff-initial": "first backoff wait (s) while the breaker is open",
    "backoff-max": "longest backoff wait (s)",
    "batch-max": "batch size (domains) while memory is normal",
    "batch-min": "batch size at warning and while probing",
    "sample-interval": "seconds between memory samples",
    "breaker-timeout": "seconds an open breaker may wait before the run gives up",
    "reset-hold": "seconds memory must stay low before the breaker half-opens",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value:  # nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
    if not value <= DURATION_MAX_S:  # also inf; a bigger timed wait overflows
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {DURATION_MAX_S:.0f} seconds (30 days)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="memtui", description="Run memory-hungry embedding jobs safely; watch and steer them live.")
    parser.add_argument("--version", action="version", version=f"memtui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a job (cache, embeddings or monitor)",
        description="Run a job under memory protection. Sizes: GB (1.5), MB (800MB) or a percent "
        "of the discovered memory limit (75%).",
    )
    run.add_argument(
        "--mode", choices=["cache", "embeddings", "monitor", "job"], default="cache", help="(--job implies job)"
    )
    run.add_argument(
        "--input",
        type=Path,
        default=None,
        help="JSON Lines (.jsonl or .jsonl.gz) of responses (default: the bundled sample)",
    )
    run.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="SQLite cache file (default: $MEMTUI_CACHE or ~/.cache/memtui/embeddings.sqlite)",
    )
    run.add_argument(
        "--model", default=None, help="sentence-transformers model folder (default: packaged all-MiniLM-L6-v2)"
    )
    run.add_argument(
        "--backend",
        choices=["torch", "onnx", "onnx-int8", "openvino"],
        default=None,
        help="what runs the model: torch (exact fp32, default), onnx (fp32) or onnx-int8 (about 2x "
        "faster, cosine to fp32 >= 0.99; needs memtui[onnx]), openvino (bf16 where the CPU has it, cosine "
        ">= 0.9999, else fp32; needs memtui[openvino]); env MEMTUI_BACKEND, config [embed] backend",
    )
    run.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="only the first N domains")
    run.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="cache (or --job) mode on a local Dask cluster of N worker processes, each guarded by memtui "
        "(needs memtui[distributed])",
    )
    run.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="cache (or --job) mode on an existing Dask cluster you control (tcp://HOST:PORT, or tls:// with Dask's "
        "client TLS config; its scheduler can run code in memtui); needs memtui[distributed]",
    )
    run.add_argument(
        "--texts",
        type=_positive_int,
        default=None,
        metavar="N",
        help="embeddings mode: the first N texts of the input (default 1000)",
    )
    run.add_argument("--strict", action="store_true", help="stop at the first bad input line instead of skipping it")
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config file (default: $MEMTUI_CONFIG or ~/.config/memtui/config.toml)",
    )
    defaults = MemoryConfig()
    for setting, (field, _) in SETTINGS.items():
        what = SETTING_HELP.get(setting, field.replace("_", " "))
        run.add_argument(
            f"--{setting}",
            default=None,
            metavar="SIZE" if field.endswith("_gb") else "N",
            help=f"{what} (default {getattr(defaults, field)}; env {env_name(setting)})".replace("%", "%%"),
        )
    face = run.add_mutually_exclusive_group()
    face.add_argument(
        "--headless", action="store_true", help="log lines and a JSON report (default when not a terminal)"
    )
    face.add_argument("--tui", action="store_true", help="the live terminal UI (default on a terminal)")
    run.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write the JSON run report here ('-' is stdout; a device or FIFO is written into, never replaced)",
    )
    run.add_argument(
        "--detach",
        action="store_true",
        help="run in the background (its own session, no terminal); print its id and return once it "
        "accepts viewers ('memtui attach ID')",
    )
    run.add_argument(
        "--theme",
        default=None,
        help="TUI theme: memtui-dark, memtui-light, memtui-contrast, a Textual theme, or a PATH.toml",
    )
    job = run.add_argument_group("job mode (your own batch function: docs/jobs.md)")
    job.add_argument(
        "--job",
        default=None,
        metavar="MODULE:FUNCTION",
        help="run FUNCTION(list of item dicts) -> one JSON result per item, over --input's JSON objects "
        "(MODULE imported from here or PYTHONPATH; it runs as you)",
    )
    job.add_argument("--output", type=Path, default=None, help="the job's results file (SQLite; resumable)")
    job.add_argument(
        "--job-batch", type=_positive_int, default=16, metavar="N", help="items per call of the function (default 16)"
    )
    monitor = run.add_argument_group("monitor mode")
    monitor.add_argument(
        "--pid", type=_positive_int, action="append", default=[], help="watch this process (repeatable)"
    )
    monitor.add_argument(
        "--match",
        default=None,
        metavar="PATTERN",
        help="watch your processes whose command line matches this regex (never memtui's own)",
    )
    monitor.add_argument("--all-users", action="store_true", help="--match also matches other users' processes")
    monitor.add_argument("--children", action="store_true", help="count each target's children in its total")
    monitor.add_argument(
        "--monitor-interval",
        type=_positive_float,
        default=2.0,
        metavar="S",
        help="seconds between samples (fractions allowed)",
    )
    monitor.add_argument(
        "--on-breaker",
        choices=["none", "stop", "term"],
        default="none",
        help="what to do to a process whose breaker opens (default none)",
    )
    monitor.add_argument(
        "--signal-other-users",
        action="store_true",
        help="allow signals (--on-breaker, s/r/k keys) to other users' processes; never pid 1, memtui or its parents",
    )
    monitor.add_argument(
        "--duration", type=_positive_float, default=None, metavar="S", help="stop watching after S seconds"
    )

    tune = sub.add_parser(
        "tune",
        help="compare the backends on a sample of your data",
        description="Run each available backend on the first N texts of --input; print texts/s, "
        "peak RSS and cosine to torch fp32 side by side, with a recommendation.",
    )
    tune.add_argument("--input", type=Path, default=None, help="JSON Lines of responses (default: the bundled sample)")
    tune.add_argument("--limit", type=_positive_int, default=500, metavar="N", help="texts to try (default 500)")
    tune.add_argument("--model", default=None, help="sentence-transformers model folder")
    tune.add_argument("--json", action="store_true", help="print the figures as JSON")

    ls = sub.add_parser("ls", help="list the running runs (any of them can be attached to)")
    ls.add_argument("--json", action="store_true", help="one JSON list: id, pid, mode, input, cache, phase, ...")
    attach = sub.add_parser("attach", help="watch and steer a running run (d detaches, q asks)")
    attach.add_argument("id", nargs="?", default=None, help="the run's id from 'memtui ls' (default: the only run)")
    attach.add_argument("--json", action="store_true", help="stream its snapshots and events as JSON lines")
    attach.add_argument("--theme", default=None, help="TUI theme (as for run)")
    attach.add_argument(
        "--config", type=Path, default=None, help="TOML config file whose [keys] apply (default: as for run)"
    )
    stop = sub.add_parser("stop", help="stop a running run cleanly (it commits first) and wait for it to end")
    stop.add_argument("id", nargs="?", default=None, help="the run's id from 'memtui ls' (default: the only run)")

    cache = sub.add_parser("cache", help="inspect the cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    info = cache_sub.add_parser("info", help="what is in the cache")
    info.add_argument("--cache", type=Path, default=None)
    info.add_argument("--json", action="store_true")
    _add_vector_commands(sub, cache_sub)
    results = sub.add_parser("results", help="a job's results as JSON Lines (or csv, parquet) in input order")
    results.add_argument("file", type=Path, help="the job's --output file")
    results.add_argument("--format", choices=["jsonl", "csv", "parquet"], default="jsonl")
    results.add_argument("--failures", action="store_true", help="the failed items and their errors instead")
    results.add_argument("--output", type=Path, default=None, help="write here instead of stdout")
    return parser


def _add_vector_commands(sub: Any, cache_sub: Any) -> None:
    """``cache export`` and ``similar`` (memtui/vectors/)."""
    export = cache_sub.add_parser("export", help="write the cache's vectors as jsonl, npy or parquet")
    export.add_argument("--cache", type=Path, default=None)
    export.add_argument("--format", required=True, metavar="FORMAT", help="jsonl, npy (+ a .rows.jsonl) or parquet")
    export.add_argument(
        "--output",
        type=Path,
        required=True,
        help="where ('-' is stdout for jsonl and parquet; a device or FIFO is written into)",
    )
    export.add_argument("--backend", default=None, help="only this backend's vectors (default: every backend's)")
    export.add_argument("--domain", action="append", default=None, help="only this domain (repeatable)")
    similar = sub.add_parser("similar", help="the responses nearest a text (or a cached vector) by cosine")
    similar.add_argument("text", nargs="?", default=None, help="the query text (embedded with the cache's model)")
    similar.add_argument("--key", default=None, help="use this cached vector (hex key) as the query; loads no model")
    similar.add_argument("--cache", type=Path, default=None)
    similar.add_argument("--top", type=_positive_int, default=10, metavar="K", help="how many (default 10)")
    similar.add_argument("--domain", action="append", default=None, help="only this domain (repeatable)")
    similar.add_argument("--backend", default=None, help="which of the cache's backends (default: its only one)")
    similar.add_argument("--model", default=None, help="the model folder, if the cache's is not found")
    similar.add_argument("--json", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    fill_closed_std_fds()  # first: no file memtui opens may become its fd 0, 1 or 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    previous = _interrupt_on_termination()
    try:
        args = build_parser().parse_args(argv)
        if args.command == "results":
            from memtui.jobs.user.commands import results_command  # noqa: PLC0415

            return results_command(args)
        if args.command == "run":
            _resolve_mode(args)
        if args.command == "similar" or (args.command == "cache" and args.cache_command == "export"):
            from memtui.vectors import commands as vectors  # noqa: PLC0415

            return vectors.similar_command(args) if args.command == "similar" else vectors.export_command(args)
        if args.command == "cache":
            return cache_info(args)
        if args.command == "tune":
            return tune(args)
        if args.command in ("ls", "attach", "stop"):
            from memtui.attach import commands  # noqa: PLC0415

            return {"ls": commands.list_runs, "attach": commands.attach, "stop": commands.stop}[args.command](args)
        if args.detach:
            from memtui.attach.commands import detach  # noqa: PLC0415

            return detach(sys.argv[1:] if argv is None else argv, args)
        return run(args)
    except MemtuiError as exc:
        print(f"memtui: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("memtui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        early_log.remove()  # a run that failed before its face started
        for sig, handler in previous.items():
            # A face that saw a hangup leaves SIGHUP ignored: a second one (the shell passing it on)
            # must not kill memtui between its report and its exit.
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, handler)


def _resolve_mode(args: argparse.Namespace) -> None:
    """``--job`` means mode job; a job's flags go with it only. A bad --job fails here (exit 2, one line)."""
    if args.job is not None:
        if args.mode not in ("cache", "job"):  # cache: the default, not typed (--job says what runs)
            raise UsageError(f"--job runs mode job, not --mode {args.mode}; drop --mode")
        if args.output is None:
            raise UsageError("--job needs --output RESULTS.sqlite (where its results go, and resume from)")
        for flag in ("limit", "texts", "model", "backend", "cache"):
            if getattr(args, flag, None) is not None:
                raise UsageError(f"--{flag} does not go with --job (it is the embedding jobs'); drop it")
        args.mode = "job"
        from memtui.jobs.user.function import load_function  # noqa: PLC0415

        args.job_function = load_function(args.job)
    elif args.mode == "job":
        raise UsageError("--mode job needs --job MODULE:FUNCTION")
    elif args.output is not None:
        raise UsageError("--output goes with --job (a cache run writes --cache)")


def _interrupt_on_termination() -> dict[int, Any]:
    """Until a face takes over its signals (before work starts: a scan, a FIFO waiting for a writer),
    SIGTERM and SIGHUP end memtui like Ctrl-C: one line, exit 130, nothing half-written."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}


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


def _resolve_input(path: Path | None) -> Path:
    if path is not None:
        return path
    if not SAMPLE_INPUT.exists():
        raise UsageError(f"no --input given and the bundled sample {SAMPLE_INPUT} is missing; pass --input FILE.jsonl")
    return SAMPLE_INPUT


def run(args: argparse.Namespace) -> int:
    early_log.install()  # what the setup logs reaches the TUI's log too (run_face takes it)
    monitor = make_monitor(args)
    check_report_path(args.report, protected=_protected_paths(args))
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
        _resolve_input(args.input),
        args.output,
        monitor,
        call_items=args.job_batch,
        strict=args.strict,
        spec=args.job,
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


def _protected_paths(args: argparse.Namespace) -> dict[str, Path]:
    """Files a --report must never replace: the input, the cache and everything beside it, the config."""
    paths: dict[str, Path] = {}
    if args.mode == "job":
        if args.input is not None and str(args.input) not in STDIN_NAMES:
            paths["input"] = args.input
        paths["results file"] = args.output
        paths.update({k.replace("cache's", "results file's"): v for k, v in companions.protected(args.output).items()})
    elif args.mode != "monitor":
        if args.input is not None and str(args.input) not in STDIN_NAMES:
            paths["input"] = args.input
        cache = args.cache or default_cache()
        paths["cache"] = cache
        paths.update(companions.protected(cache))
    config = args.config or default_config()
    if config is not None:
        paths["config file"] = config
    return paths


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
    return report.exit_code


def check_report_path(report: Path | None, *, protected: dict[str, Path]) -> None:
    """Before any work: --report must be writable and must not name the input, the cache or its companions."""
    if report is not None:
        check_output(report, "--report", protected=protected)


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
        _resolve_input(args.input),
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


def write_report(path: Path, report: Report) -> None:
    """By the user-named output rule (memtui.output): a file all at once, a device or FIFO written into."""
    try:
        write_output(path, (json.dumps(report_dict(report), indent=2) + "\n").encode(), "report")
    except OSError as exc:
        raise RuntimeFailure(
            f"the run ended ({report.status}) but its report could not be written to "
            f"{path} ({exc.strerror or exc}); the report is on stdout"
        ) from None


def tune(args: argparse.Namespace) -> int:
    from memtui.jobs.tune import format_table  # noqa: PLC0415
    from memtui.jobs.tune import tune as run_tune  # noqa: PLC0415

    result = run_tune(
        _resolve_input(args.input), args.limit, args.model, log=lambda line: print(line, file=sys.stderr, flush=True)
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for line in format_table(result):
            print(line)
    return EXIT_OK


def _shown(key: str, value: object) -> object:
    """A cache-info value as a person reads it: times as local dates, sizes in memtui's units."""
    if key.endswith("_at") and isinstance(value, (int, float)):
        import datetime  # noqa: PLC0415

        return datetime.datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    if key.endswith("_bytes") and isinstance(value, int):
        from memtui.memory.units import format_bytes  # noqa: PLC0415

        return format_bytes(value)
    return value


def cache_info(args: argparse.Namespace) -> int:
    from memtui.embed.reader import check_cache_file  # noqa: PLC0415
    from memtui.embed.store import CacheStore  # noqa: PLC0415
    from memtui.vectors.export import available_formats  # noqa: PLC0415

    path = args.cache or default_cache()
    check_cache_file(path)  # the reader's rule: no link, a regular file of ours (companions too)
    info = {**CacheStore.info(path), "export_formats": available_formats()}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>15}: {_shown(key, value)}")
    return EXIT_OK
