"""Import the operator's ``MODULE:FUNCTION`` as ``python -m`` would, refusing code another user could change.

memtui often runs as root on shared servers; importing a module runs it. So the module's file, and the
folder it is imported from, must belong to root or to the invoking user and be writable by nobody else
(not even a sticky ``/tmp``: another user could plant a module there that the job's own imports pick
up); every folder above must pass ``safefs.check_ancestors``. The current directory joins ``sys.path``
only when it passes that rule, and so must every other ``sys.path`` entry (``PYTHONPATH``: the job's own
imports search them all). A dotted module is checked level by level, each package and namespace folder,
before any of its code runs. Bytecode is read and written only under a private ``sys.pycache_prefix``, so a
``__pycache__`` another user can write is never read. Every refusal, and every failed import, is one
UsageError line (exit 2); a failed import shows the import error's own first line.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memtui.errors import UsageError
from memtui.safefs import UnsafeFile, check_ancestors, describe_mode, refusal

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FORM = "--job takes MODULE:FUNCTION (e.g. --job mytasks:classify, MODULE importable from here or PYTHONPATH)"


def parse_spec(spec: str) -> tuple[str, str]:
    module, sep, attr = spec.partition(":")
    if not sep or not _NAME.match(module) or not _NAME.match(attr):
        raise UsageError(f"--job {spec!r}: {_FORM}")
    return module, attr


def _writable_by_others(st: os.stat_result) -> bool:
    return st.st_uid not in (0, os.geteuid()) or bool(st.st_mode & 0o022)


def check_import_folder(folder: Path, spec: str) -> None:
    """The folder a module is imported from: ours or root's, writable by nobody else, safe ancestors."""
    st = os.stat(folder)
    if _writable_by_others(st):
        raise UnsafeFile(
            f"--job {spec}: memtui does not import from {folder} ({describe_mode(st)}): another user could "
            "put code there; move the module to a folder only you can write"
        )
    check_ancestors(folder / "x", f"--job {spec}: folder")


def check_module_file(path: Path, spec: str) -> None:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode) or _writable_by_others(st):
        raise UnsafeFile(
            f"--job {spec}: module file {path} ({describe_mode(st)}) is not a file only root or you can "
            "write; chmod go-w it (and chown it to yourself) or move it"
        )


def _cwd_safe(spec: str) -> bool:
    try:
        check_import_folder(Path.cwd(), spec)
    except (UsageError, OSError):
        return False
    return True


def load_function(spec: str) -> tuple[Callable[[list[dict[str, Any]]], list[Any]], str]:
    """The function ``spec`` names and its display name; UsageError (one line) when it cannot be used."""
    module_name, attr = parse_spec(spec)
    cwd = os.getcwd()
    if not _cwd_safe(spec):  # ``python -m`` put it there; the job's own imports must not find planted code
        sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]
    elif cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    _check_search_path(spec)
    _private_bytecode()
    _check_chain(module_name, spec, cwd)
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # the user's code: its error, in one line
        raise UsageError(f"--job {spec}: importing {module_name} failed: {_first_line(exc)}") from None
    if "." in module_name:  # checked before it ran (_check_chain); and what was imported is what was checked
        _check_origin(importlib.util.find_spec(module_name), spec)
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"--job {spec}: module {module_name} has no {attr!r}; check the function's name") from None
    if not callable(target):
        raise UsageError(f"--job {spec}: {attr} is a {type(target).__name__}, not a function; name a function")
    return target, spec


def _check_search_path(spec: str) -> None:
    """Every folder (or zip) on ``sys.path`` passes the rule: the job's own imports may find any of them."""
    kept = []
    for entry in sys.path:
        path = Path(entry or os.getcwd())
        if not path.exists():
            continue  # contributes nothing now; dropped so that nobody can create it for later imports
        st = os.stat(path)
        if _writable_by_others(st):
            raise UnsafeFile(
                f"--job {spec}: memtui does not import from {path} on the module search path ({describe_mode(st)}):"
                " another user could put code there; take it out of PYTHONPATH"
            )
        check_ancestors(path / "x" if path.is_dir() else path, f"--job {spec}: search path entry")
        kept.append(entry)
    sys.path[:] = kept


def _private_bytecode() -> None:
    """Compiled modules only from a folder of ours: a ``__pycache__`` another user can write is never read."""
    if sys.pycache_prefix is not None:
        return
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memtui" / "pycache"
    try:
        check_ancestors(base, "bytecode folder")
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(base)
        if refusal(base, st, folder=True) is not None or st.st_mode & 0o077:
            raise UnsafeFile(str(base))
        sys.pycache_prefix = str(base)  # kept between runs: a large library compiles once
    except (OSError, UnsafeFile):
        sys.pycache_prefix = tempfile.mkdtemp(prefix="memtui-pycache-")  # ours, 0700; compiled again each run


def _check_chain(module_name: str, spec: str, cwd: str) -> None:
    """Find each level of ``module_name`` without running it, and check its file and folders first."""
    parts = module_name.split(".")
    try:
        found = importlib.util.find_spec(parts[0])  # a top-level name: finding runs no code
    except (ImportError, ValueError) as exc:
        raise UsageError(f"--job {spec}: cannot find module {parts[0]!r}: {_first_line(exc)}") from None
    if found is None:
        unsafe = "" if _cwd_safe(spec) else f" (the current folder {cwd} is writable by others, so it is not searched)"
        raise UsageError(
            f"--job {spec}: no module {parts[0]!r} here or on PYTHONPATH{unsafe}; run from its folder or set PYTHONPATH"
        )
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        _check_origin(found, spec)
        locations = list(found.submodule_search_locations or ())
        for location in locations:  # a package's folder, or each folder of a namespace package
            check_import_folder(Path(location), spec)
        if depth == len(parts):
            return
        if not locations:
            raise UsageError(f"--job {spec}: {name} is not a package, so it has no {parts[depth]!r}")
        found = importlib.machinery.PathFinder.find_spec(".".join(parts[: depth + 1]), locations)
        if found is None:
            raise UsageError(f"--job {spec}: package {name} has no module {parts[depth]!r}; check the name")


def _check_origin(found: Any, spec: str) -> None:
    """A module from a file (not built in, not frozen): the file and its import folder pass the rule."""
    origin = getattr(found, "origin", None) if found is not None else None
    if not origin or not os.path.isabs(origin):
        return  # built in or frozen: part of the interpreter
    path = Path(origin)
    check_module_file(path, spec)
    folder = path.parent.parent if path.name == "__init__.py" else path.parent
    check_import_folder(folder, spec)
    if path.name == "__init__.py":
        check_import_folder(path.parent, spec)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__
