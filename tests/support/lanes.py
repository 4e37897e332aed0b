"""Which lane a test belongs to, found from what it uses rather than from markers someone must remember.

A test is ``model`` when it asks (directly or through its fixtures) for the real-model fixtures, and
``slow`` when its code, its fixtures, or the test and support helpers they call start the real CLI in
a subprocess (``tests/support/cli.py``'s ``memtui``/``popen_memtui``, or any ``"-m", "memtui"``
command line), or start a real Dask cluster. The fast lane (``make test-fast``) is what is neither;
``guard_fast_lane`` fails any test there that imports the model's libraries all the same.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

from tests.support import cli

#: The session fixtures that load or export the real model.
MODEL_FIXTURES = frozenset({"real_embedder", "onnx_models"})
#: Names whose use starts something heavy in this process: a real cluster, the model's own class.
HEAVY_NAMES = frozenset({"LocalCluster", "SentenceTransformer"})
#: The helpers that run the real CLI in a subprocess (make_sample runs the generator: fast, no model).
CLI_HELPERS = (cli.memtui, cli.popen_memtui)
#: Libraries the fast lane never imports: loading any of them means a test reached the real model.
MODEL_LIBRARIES = ("torch", "sentence_transformers", "transformers")
#: Set by ``make test-fast``: select the fast lane and guard it.
LANE_ENV = "MEMTUI_TEST_LANE"
FAST_EXPR = "not model and not slow"
TESTS = Path(__file__).resolve().parents[1]


def _flat(consts: tuple[Any, ...]) -> set[Any]:
    out: set[Any] = set()
    for c in consts:
        if isinstance(c, tuple | frozenset):
            out |= _flat(tuple(c))
        elif isinstance(c, str):
            out.add(c)
    return out


class _Reach:
    """Whether a function's code reaches the CLI subprocess or a heavy name, through the functions and
    classes of the tests package it refers to (a static walk: names, not calls, so it errs towards slow)."""

    def __init__(self) -> None:
        self._memo: dict[CodeType, bool] = {}

    def code(self, code: CodeType, namespace: dict[str, Any]) -> bool:
        if code in self._memo:
            return self._memo[code]
        self._memo[code] = False  # in progress: a cycle adds nothing
        found = self._direct(code) or any(self._name(n, namespace) for n in code.co_names)
        found = found or any(self.code(c, namespace) for c in code.co_consts if isinstance(c, CodeType))
        self._memo[code] = found
        return found

    @staticmethod
    def _direct(code: CodeType) -> bool:
        strings = _flat(code.co_consts)
        return ("-m" in strings and "memtui" in strings) or bool(HEAVY_NAMES & set(code.co_names))

    def _name(self, name: str, namespace: dict[str, Any]) -> bool:
        obj = namespace.get(name)
        if obj is None:
            return False
        if any(obj is helper for helper in CLI_HELPERS):
            return True
        return self.obj(obj)

    def obj(self, obj: Any) -> bool:
        obj = inspect.unwrap(obj) if callable(obj) else obj
        if inspect.isfunction(obj):
            return _ours(obj.__code__.co_filename) and self.code(obj.__code__, obj.__globals__)
        if inspect.isclass(obj):
            module = sys.modules.get(obj.__module__)
            if module is None or not _ours(str(getattr(module, "__file__", ""))):
                return False
            return any(self.obj(member) for member in vars(obj).values() if inspect.isfunction(member))
        return False


def _ours(filename: str) -> bool:
    """A file of the tests folder (test modules import as "hostile.test_x" or "tests.support.x" alike)."""
    return Path(filename).resolve().is_relative_to(TESTS)


def mark_lanes(items: list[pytest.Item]) -> None:
    """Add ``model`` and ``slow`` to the tests whose fixtures or code say so (markers already there stay)."""
    reach = _Reach()
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & MODEL_FIXTURES and not item.get_closest_marker("model"):
            item.add_marker(pytest.mark.model)
        if item.get_closest_marker("slow"):
            continue
        funcs = [getattr(item, "function", None)]
        info = getattr(item, "_fixtureinfo", None)
        for defs in info.name2fixturedefs.values() if info else ():
            funcs += [d.func for d in defs]
        if any(f is not None and reach.obj(f) for f in funcs):
            item.add_marker(pytest.mark.slow)


def fast_lane() -> bool:
    return os.environ.get(LANE_ENV) == "fast"


def select_fast_lane(config: pytest.Config) -> None:
    """``make test-fast``: the fast lane's selection, combined with any ``-m`` of the caller's."""
    own = config.option.markexpr
    config.option.markexpr = f"({FAST_EXPR}) and ({own})" if own else FAST_EXPR


def model_libraries_loaded() -> list[str]:
    return [name for name in MODEL_LIBRARIES if name in sys.modules]
