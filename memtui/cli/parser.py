"""memtui's command line, parsed: every subcommand and option group, and the small types its flags take.

Parsing only: what a run does with the flags is ``memtui.cli.wiring``'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from memtui import __version__
from memtui.errors import UsageError
from memtui.memory.config import DURATION_MAX_S, MemoryConfig
from memtui.memory.config_layers import SETTINGS, env_name

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
    job.add_argument(
        "--stop-grace",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="after a stop, how long the call in flight may take before the run ends without it (default 30)",
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
