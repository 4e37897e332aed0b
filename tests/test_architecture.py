"""The layers hold: the import contracts in pyproject, and no import cycle between memtui's modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def import_cycles(package: str) -> list[list[str]]:
    """Every import cycle between modules of ``package`` (strongly connected groups of two or more), sorted.

    Runtime imports only: an import under ``if TYPE_CHECKING:`` runs in no process. A lazy import inside a
    function counts: it runs, and a cycle through it fails with a half-initialised module when it does.
    """
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    inside = set(modules)
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in inside) for m in modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in modules:  # Tarjan's algorithm, iterative (no recursion limit on a deep graph)
        if start in order:
            continue
        work = [(start, iter(edges[start]))]
        order[start] = low[start] = len(order)
        stack.append(start)
        on_stack.add(start)
        while work:
            here, targets = work[-1]
            step = next(targets, None)
            if step is not None:
                if step not in order:
                    order[step] = low[step] = len(order)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(edges[step])))
                elif step in on_stack:
                    low[here] = min(low[here], order[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[here])
            if low[here] == order[here]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == here:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return sorted(cycles)


def part(module: str) -> str:
    """memtui.jobs.cache -> memtui.jobs; memtui.cli -> memtui.cli."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_memtuis_parts():
    """Coarser than modules: jobs.x -> cli -> jobs.y is a cycle between parts with none between modules."""
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


def test_no_import_cycle_between_memtuis_modules():
    assert import_cycles("memtui") == [], "import cycles between modules (break each with a small shared module)"


def test_the_cycle_finder_finds_a_cycle_between_modules(tmp_path):
    """The finder itself works: a tiny package whose a -> b -> c -> a (one lazily); d <-> e only for mypy."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("import cyclic.c\n")
    (package / "c.py").write_text("def later():\n    from cyclic.a import x\n")
    (package / "d.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    from cyclic import e\n")
    (package / "e.py").write_text("from cyclic import d\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert import_cycles("cyclic") == [["cyclic.a", "cyclic.b", "cyclic.c"]]
    finally:
        sys.path.remove(str(tmp_path))


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
