"""The layers hold: the import contracts in pyproject, and no import cycle between memtui's parts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def part(module: str) -> str:
    """memtui.jobs.cache -> memtui.jobs; memtui.cli -> memtui.cli."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_memtuis_parts():
    graph = grimp.build_graph("memtui")
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("memtui") and part(imported) != part(module) and part(module) != "memtui":
                edges.setdefault(part(module), set()).add(part(imported))

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                todo.extend(edges.get(here, ()))
        return False

    cycles = sorted({tuple(sorted((a, b))) for a, targets in edges.items() for b in targets if reaches(b, a)})
    assert not cycles, f"import cycles between parts: {cycles}"


def test_the_import_contracts_are_kept():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.lower().split("contracts:")[-1] or " 0 broken" in result.stdout


def test_a_broken_contract_is_caught(tmp_path):
    """The checker itself works: a memory module that imports the runner breaks contract 1."""
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "memtui", copy / "memtui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "memtui" / "memory" / "oops.py").write_text("import memtui.runner\n")
    env = {"PYTHONPATH": str(copy), "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode != 0 and "memtui.memory.oops -> memtui.runner" in result.stdout
