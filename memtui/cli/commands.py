"""The small subcommands: ``tune`` (backends side by side on the user's data) and ``cache info``."""

from __future__ import annotations

import argparse
import json
import sys

from memtui.cli.wiring import resolve_input
from memtui.paths import default_cache


def tune(args: argparse.Namespace) -> int:
    from memtui.jobs.tune import format_table  # noqa: PLC0415
    from memtui.jobs.tune import tune as run_tune  # noqa: PLC0415

    result = run_tune(
        resolve_input(args.input), args.limit, args.model, log=lambda line: print(line, file=sys.stderr, flush=True)
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for line in format_table(result):
            print(line)
    return 0  # EXIT_OK (memtui.cli)


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
    return 0  # EXIT_OK (memtui.cli)
