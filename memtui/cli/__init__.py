"""Command line: the entry point (``memtui.cli:main``), exit codes, which subcommand runs.

Exit codes: 0 done; 1 failed or aborted by the breaker (after committing);
2 bad input or usage; 130 interrupted (Ctrl-C, SIGTERM or quit, after committing).

Its parts, one job each: ``parser`` (the options), ``wiring`` (a run: config, engine, face),
``report`` (the JSON report's file and the paths it must never replace), ``commands`` (tune, cache info).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from memtui import early_log
from memtui.cli.commands import cache_info, tune
from memtui.cli.parser import build_parser
from memtui.cli.wiring import run
from memtui.errors import MemtuiError, UsageError
from memtui.stdio import fill_closed_std_fds

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
