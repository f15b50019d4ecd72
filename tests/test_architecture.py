"""The house's rules (ARCHITECTURE.md): imports point one way, no module imports itself back, and the library
stays as light as the official package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Each room and the project packages it may import (besides itself); app.py is the entry point.
ALLOWED = {
    "mobile_sam": set(),
    "samkit": {"mobile_sam"},
    "everything": {"mobile_sam", "samkit"},
    "compare": {"mobile_sam", "samkit"},
    "distill": {"mobile_sam", "samkit"},
    "webapp": {"mobile_sam", "samkit", "everything", "compare", "distill"},
    "app": {"webapp"},
}
PROJECT = set(ALLOWED) | {"tests", "benchmarks", "support"}
HEAVY = ("cv2", "PIL", "matplotlib", "gradio", "ultralytics", "ray", "onnxruntime", "onnx", "pycocotools", "samkit")


def room_files(room: str) -> list[Path]:
    return [REPO / "app.py"] if room == "app" else sorted((REPO / room).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports anywhere (function-level imports included), as absolute dotted names."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for room in ALLOWED for path in room_files(room)}


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_the_rooms_below_it(room):
    offending = []
    for path in room_files(room):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top in PROJECT and top != room and top not in ALLOWED[room]:
                offending.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offending, "\n".join(offending)


def test_no_import_cycle_between_modules():
    modules = project_modules()
    graph = {
        name: {target for target in imported_modules(path) if target in modules and target != name}
        for name, path in modules.items()
    }
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def test_import_mobile_sam_loads_none_of_the_heavy_or_project_packages():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import mobile_sam"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "mobile_sam" in loaded and "torch" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return components
