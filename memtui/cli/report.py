"""The run's JSON report as a file (``--report``): checked before any work, written after the run.

The user-named output rule is ``memtui.output``'s; here, which paths a report must never replace.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memtui.embed import companions
from memtui.errors import RuntimeFailure
from memtui.jobs.source import STDIN_NAMES
from memtui.output import check_output, write_output
from memtui.paths import default_cache, default_config
from memtui.records import Report, report_dict


def check_report_path(report: Path | None, *, protected: dict[str, Path]) -> None:
    """Before any work: --report must be writable and must not name the input, the cache or its companions."""
    if report is not None:
        check_output(report, "--report", protected=protected)


def protected_paths(args: argparse.Namespace) -> dict[str, Path]:
    """Files a --report must never replace: the input, the cache and everything beside it, the config."""
    paths: dict[str, Path] = {}
    if args.mode == "job":
        if args.input is not None and str(args.input) not in STDIN_NAMES:
            paths["input"] = args.input
        paths["results file"] = args.output
        paths.update(companions.protected(args.output, "results file"))
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


def write_report(path: Path, report: Report) -> None:
    """By the user-named output rule (memtui.output): a file all at once, a device or FIFO written into."""
    try:
        write_output(path, (json.dumps(report_dict(report), indent=2) + "\n").encode(), "report")
    except OSError as exc:
        raise RuntimeFailure(
            f"the run ended ({report.status}) but its report could not be written to "
            f"{path} ({exc.strerror or exc}); the report is on stdout"
        ) from None
