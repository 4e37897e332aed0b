"""Build the Runner of a user's job: the one engine ``memtui run --job`` and ``memtui.run_job`` both drive."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memtui.jobs.user.executor import DEFAULT_CALL_ITEMS, FunctionExecutor
from memtui.jobs.user.items import ItemJob


def build_job_runner(
    fn: Callable[[list[Any]], Any],
    name: str,
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    monitor: Any,
    *,
    call_items: int = DEFAULT_CALL_ITEMS,
    strict: bool = False,
) -> Any:
    """The Runner (memtui.runner) over an ItemJob: the one engine of the CLI and the API."""
    from memtui.embed import companions  # noqa: PLC0415
    from memtui.memory.headroom import HeadroomWatch  # noqa: PLC0415
    from memtui.runner import Runner  # noqa: PLC0415
    from memtui.trace import RunTrace  # noqa: PLC0415

    executor = FunctionExecutor(fn, name, call_items=call_items)
    job = ItemJob(input_path, output, executor, strict=strict)
    return Runner(job, monitor, trace=RunTrace(companions.trace_path(Path(output))), headroom=HeadroomWatch())
