"""The ``cache export`` and ``similar`` commands: flags in, one-line errors out, results to stdout."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from memtui.embed import companions
from memtui.embed.reader import CacheReader, open_cache
from memtui.errors import RuntimeFailure, UsageError
from memtui.output import stream_fd
from memtui.paths import default_cache, default_config
from memtui.stdio import write_line
from memtui.vectors import export as exporting
from memtui.vectors import similar as searching

#: The exit status of an export whose stdout reader left early (as a tool killed by SIGPIPE: 128 + 13).
READER_LEFT = 141


def protected_paths(cache: Path) -> dict[str, Path]:
    """What an export must never replace: the cache, every file beside it, the config."""
    if not cache.name:
        raise UsageError(f"--cache {str(cache)!r} is not a file path; pass --cache PATH of a cache file")
    paths = {"cache": cache}
    paths.update(companions.protected(cache))  # every file beside it, named once
    config = default_config()
    if config is not None:
        paths["config file"] = config
    return paths


def _say(line: str) -> None:
    write_line(sys.stderr, f"memtui: {line}")


def _check_selection(reader: CacheReader, backend: str | None, domains: list[str] | None) -> str | None:
    """--backend and every --domain name something in the cache (exit 2 otherwise); the backend as stored."""
    resolved = reader.resolve_backend(backend) if backend is not None else None
    for domain in domains or ():
        if not reader.has_domain(domain, resolved):
            where = f" for backend {resolved}" if resolved else ""
            raise UsageError(
                f"--domain {domain!r} has no rows in cache {reader.path}{where}; see 'memtui cache info' "
                "or export without --domain"
            )
    return resolved


def export_command(args: argparse.Namespace) -> int:
    cache = args.cache or default_cache()
    exporting.check_request(args.format, args.output, protected_paths(cache))
    with open_cache(cache) as reader:
        backend = _check_selection(reader, args.backend, args.domain)
        try:
            rows = exporting.export(reader, args.format, args.output, backend=backend, domains=args.domain, log=_say)
        except OSError as exc:
            if exc.errno == errno.EPIPE and stream_fd(args.output) == 1:
                return READER_LEFT  # `export --output - | head`: the reader took what it wanted; no error, no success
            kept = (
                "what was written there stays"
                if exporting.written_into(args.output)
                else "nothing was left half-written there"
            )
            raise RuntimeFailure(f"export to {args.output} failed ({exc.strerror or exc}); {kept}") from None
    _say(f"exported {rows} rows ({args.format}) to {args.output}")
    return 0


def similar_command(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.key is None):
        raise UsageError("pass a TEXT to search for, or --key KEY of a cached vector (not both)")
    if args.top > searching.TOP_MAX:
        raise UsageError(f"--top {args.top} is more than {searching.TOP_MAX}; pass a smaller --top")
    cache = args.cache or default_cache()
    with open_cache(cache) as reader:
        if args.key is not None:
            query = searching.query_from_key(reader, searching.parse_key(args.key))
            backend = reader.resolve_backend(args.backend) if args.backend else query.backend
        else:
            from memtui.embed.backends import resolve_backend  # noqa: PLC0415

            backend = searching.choose_backend(reader, args.backend, lambda: resolve_backend(None, default_config()))
            query = searching.query_from_text(reader, args.text, backend, model=args.model)
        _check_selection(reader, backend, args.domain)
        matches = searching.nearest(reader, query.vector, top=args.top, backend=backend, domains=args.domain, log=_say)
    if args.json:
        body = {
            "query": {"text": args.text, "key": args.key, "backend": backend, "vector": query.how},
            "texts_kept": False,
            "note": searching.NO_TEXT,
            "matches": [m.as_dict() for m in matches],
        }
        print(json.dumps(body, indent=2))
        return 0
    _say(f"query: {query.how}; {searching.NO_TEXT}")
    for line in searching.table(matches):
        print(line)
    return 0
