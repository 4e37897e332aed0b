"""``memtui cache export``: the cache's rows and vectors as JSON Lines, .npy (+ rows) or Parquet.

Streamed in chunks of ``reader.CHUNK_ROWS`` rows inside one read transaction, so a
million vectors never sit in memory at once and a run writing the cache meanwhile
does not change what is exported halfway. Every output goes through
``memtui.output`` (checked before any work, a temp file renamed on success, a
device or FIFO written into, '-' is stdout).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from memtui.embed.reader import CacheReader, RowBatch
from memtui.errors import RuntimeFailure, UsageError
from memtui.output import check_output, open_output, stream_fd

FORMATS = ("jsonl", "npy", "parquet")
EXTRA_HINT = "pip install 'memtui[export]' (pyarrow)"
#: Rows per Parquet row group (6 MiB of vectors at 384 dims; pyarrow holds a few copies of a group while writing).
PARQUET_GROUP_ROWS = 4096
#: Seconds between progress lines on stderr.
PROGRESS_EVERY_S = 5.0


def available_formats() -> list[str]:
    """The formats this install can write (parquet needs pyarrow)."""
    return [f for f in FORMATS if f != "parquet" or importlib.util.find_spec("pyarrow") is not None]


def rows_path(output: Path) -> Path:
    """The .npy export's rows, beside it: ``vectors.npy`` -> ``vectors.rows.jsonl``."""
    stem = output.name[: -len(".npy")] if output.name.endswith(".npy") else output.name
    return output.with_name(stem + ".rows.jsonl")


def check_request(fmt: str, output: Path, protected: dict[str, Path]) -> list[Path]:
    """Before any work: the format is known and installed, every output path is writable and harmless."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}; pass --format jsonl, npy or parquet")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise UsageError(f"--format parquet needs pyarrow, which is not installed; {EXTRA_HINT}")
    outputs = [output]
    if fmt == "npy":
        if stream_fd(output) is not None or _is_node(output):
            raise UsageError(
                f"--format npy writes two files (the array and its rows), so --output {output} must be a file "
                "path; pass a path such as vectors.npy, or --format jsonl or parquet for a stream"
            )
        outputs.append(rows_path(output))
    for path in outputs:
        check_output(path, "--output", protected=protected)
    return outputs


def written_into(output: Path) -> bool:
    """Whether ``output`` is written into as the data comes (a stream, device or FIFO), not renamed in place."""
    return stream_fd(output) is not None or _is_node(output)


def _is_node(path: Path) -> bool:
    """An existing device, FIFO or socket (written into, so it cannot take an .npy's two files)."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode))


def export(
    reader: CacheReader,
    fmt: str,
    output: Path,
    *,
    backend: str | None = None,
    domains: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> int:
    """Write the selection to ``output`` in ``fmt``; return the rows written. OSError for the caller to word."""
    with reader.snapshot(), contextlib.closing(reader.batches(backend, domains)) as chunks:
        total = reader.count(backend, domains)
        progress = _Progress(total, log)
        batches = progress.wrap(chunks)
        if fmt == "jsonl":
            with open_output(output, "export") as out:
                for batch in batches:
                    out.write(_jsonl(batch, with_vector=True))
        elif fmt == "npy":
            dim = reader.dim or _first_dim(reader, backend, domains)
            with open_output(output, "export") as out, open_output(rows_path(output), "export rows") as rows:
                np.lib.format.write_array_header_1_0(
                    out, {"descr": "<f4", "fortran_order": False, "shape": (total, dim)}
                )
                for batch in batches:
                    out.write(batch.blob)
                    rows.write(_jsonl(batch, with_vector=False, first=progress.done - len(batch)))
                if progress.done != total:  # one read transaction: cannot happen unless the cache is damaged
                    raise RuntimeFailure(f"the cache changed while exporting ({progress.done} rows, {total} counted)")
        else:
            _parquet(output, batches, reader.dim or _first_dim(reader, backend, domains))
        return progress.done


def _first_dim(reader: CacheReader, backend: str | None, domains: Sequence[str] | None) -> int:
    for batch in reader.batches(backend, domains, size=1):
        return batch.dim
    return 0


def _jsonl(batch: RowBatch, *, with_vector: bool, first: int = 0) -> bytes:
    """One JSON object per row; the vector's floats written exactly (float32 -> float64 is exact)."""
    matrix = batch.matrix.astype(np.float64) if with_vector else None
    lines = []
    for i in range(len(batch)):
        row: dict[str, Any] = {} if with_vector else {"row": first + i}
        row.update(
            id=batch.ids[i],
            domain=batch.domains[i],
            model=batch.models[i],
            prompt_type=batch.prompt_types[i],
            key=batch.keys[i].hex(),
            backend=batch.backend,
        )
        if matrix is not None:
            row["vector"] = matrix[i].tolist()
        lines.append(json.dumps(row, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def parquet_schema(dim: int) -> Any:
    import pyarrow as pa  # noqa: PLC0415 - the optional extra loads only for parquet

    return pa.schema(
        [
            ("id", pa.string()),
            ("domain", pa.string()),
            ("model", pa.string()),
            ("prompt_type", pa.string()),
            ("key", pa.string()),
            ("backend", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def _parquet(output: Path, batches: Iterator[RowBatch], dim: int) -> None:
    import pyarrow as pa  # noqa: PLC0415 - the optional extra loads only for parquet
    import pyarrow.parquet as pq  # noqa: PLC0415

    schema = parquet_schema(dim)
    with open_output(output, "export") as out:
        sink = _Positioned(out)
        with pq.ParquetWriter(sink, schema) as writer:
            pending: list[RowBatch] = []
            for batch in batches:
                pending.append(batch)
                if sum(map(len, pending)) >= PARQUET_GROUP_ROWS:
                    writer.write_table(_table(pending, schema, dim, pa))
                    pending = []
            if pending:
                writer.write_table(_table(pending, schema, dim, pa))


def _table(batches: list[RowBatch], schema: Any, dim: int, pa: Any) -> Any:
    values = pa.array(np.frombuffer(b"".join(b.blob for b in batches), dtype="<f4"), type=pa.float32())
    columns = [
        pa.array([x for b in batches for x in b.ids], pa.string()),
        pa.array([x for b in batches for x in b.domains], pa.string()),
        pa.array([x for b in batches for x in b.models], pa.string()),
        pa.array([x for b in batches for x in b.prompt_types], pa.string()),
        pa.array([k.hex() for b in batches for k in b.keys], pa.string()),
        pa.array([b.backend for b in batches for _ in range(len(b))], pa.string()),
        pa.FixedSizeListArray.from_arrays(values, dim),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


class _Positioned(io.RawIOBase):
    """A write-only file that knows its position, so pyarrow can write a stream, a FIFO or a device."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._at = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._out.write(view)
        self._at += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._at

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:  # the caller's open_output closes (or renames) the real file
        super().close()


class _Progress:
    """Counts rows; a line on stderr every ``PROGRESS_EVERY_S`` on a long export."""

    def __init__(self, total: int, log: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.done = total, 0
        self._log, self._clock = log, clock
        self._next = clock() + PROGRESS_EVERY_S

    def wrap(self, batches: Iterator[RowBatch]) -> Iterator[RowBatch]:
        for batch in batches:
            self.done += len(batch)
            if self._clock() >= self._next:
                self._next = self._clock() + PROGRESS_EVERY_S
                self._log(f"{self.done}/{self.total} rows ({100 * self.done // max(self.total, 1)}%)")
            yield batch
