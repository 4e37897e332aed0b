"""``memtui results FILE``: a job's results (or its failures) in input order, as JSON Lines, csv or parquet.

Streamed row by row from a read-only connection (safe while a run writes the file); written by the
user-named output rule (memtui.output.open_output: stdout, a device or FIFO written into, a file
replaced all at once). CSV and parquet hold each result as its JSON text (any JSON value fits).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memtui.embed import companions
from memtui.errors import RuntimeFailure, UsageError
from memtui.jobs.user.results import read_rows
from memtui.output import check_output, open_output

PARQUET_GROUP_ROWS = 10_000


def results_command(args: argparse.Namespace) -> int:
    output = args.output or Path("-")
    protected = {"results file": args.file, **companions.protected(args.file, "results file")}
    check_output(output, "--output", protected=protected)
    rows = read_rows(args.file, failures=args.failures)
    value = "error" if args.failures else "result"
    if args.format == "parquet":
        try:
            import pyarrow  # noqa: F401, PLC0415
        except ImportError:
            raise UsageError(
                "--format parquet needs pyarrow (pip install 'memtui[export]'); use jsonl or csv"
            ) from None
    count = 0
    try:
        with open_output(output, "results") as out:
            if args.format == "jsonl":
                head, tail = (b', "error": ', b"}\n") if args.failures else (b', "result": ', b"}\n")
                for key, pieces in rows:  # the stored JSON text, copied as it is, a piece at a time
                    out.write(b'{"key": ' + json.dumps(key, ensure_ascii=False).encode() + head)
                    if args.failures:
                        out.write(json.dumps(_text(pieces), ensure_ascii=False).encode())
                    else:
                        for piece in pieces:
                            out.write(piece)
                    out.write(tail)
                    count += 1
            elif args.format == "csv":
                count = _csv(out, rows, value)
            else:
                count = _parquet(out, rows, value)
    except BrokenPipeError:  # `memtui results F | head`: the reader has all it wanted
        return 0
    except OSError as exc:
        raise RuntimeFailure(f"writing results to {output} failed ({exc.strerror or exc})") from None
    print(f"memtui: {count} {'failed items' if args.failures else 'results'} written", file=sys.stderr)
    return 0


def _key(key: Any) -> str:
    """A key in a text column: a string id as itself, any other id as its JSON text."""
    return key if isinstance(key, str) else json.dumps(key, ensure_ascii=False)


def _text(pieces: Iterator[bytes]) -> str:
    return b"".join(pieces).decode("utf-8", "replace")


def _csv(out: Any, rows: Iterator[tuple[Any, Iterator[bytes]]], value: str) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(["key", value])
    count = 0
    for key, pieces in rows:
        writer.writerow([_key(key), _text(pieces)])
        count += 1
    text.flush()
    text.detach()
    return count


def _parquet(out: Any, rows: Iterator[tuple[Any, Iterator[bytes]]], value: str) -> int:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    from memtui.vectors.export import _Positioned  # noqa: PLC0415 - the one parquet sink over a stream

    schema = pa.schema([("key", pa.string()), (value, pa.string())])
    count = 0
    with pq.ParquetWriter(_Positioned(out), schema) as writer:
        keys: list[str] = []
        values: list[str] = []
        for key, pieces in rows:
            keys.append(_key(key))
            values.append(_text(pieces))
            count += 1
            if len(keys) >= PARQUET_GROUP_ROWS:
                writer.write_table(pa.table({"key": keys, value: values}, schema=schema))
                keys, values = [], []
        if keys or not count:
            writer.write_table(pa.table({"key": keys, value: values}, schema=schema))
    return count
