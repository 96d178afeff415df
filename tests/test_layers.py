"""The layer order of the code, enforced by parsing every import (module level, in functions, and type-only).

Contracts at the bottom (daemon/core); capture (daemon/capture) and the inference pipeline (workers) above
them; the supervisor and the daemon's commands (daemon/) above those; clients and training on top, then the
benchmarks; the package root composes the command line and the public API. Nothing imports upward, and
neither modules nor folders import in a circle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from support.daemon import REPO

LAYERS = {
    "emotiond.daemon.core": 0,
    "emotiond.daemon.capture": 1,
    "emotiond.workers": 1,
    "emotiond.daemon": 2,
    "emotiond.clients": 3,
    "emotiond.training": 3,
    "emotiond.benchmarks": 4,
    "emotiond": 5,
}
FOLDERS = {"": "emotiond", "daemon": "emotiond.daemon", "daemon/core": "emotiond.daemon.core",
           "daemon/capture": "emotiond.daemon.capture", "workers": "emotiond.workers",
           "clients": "emotiond.clients", "clients/web": "emotiond.clients.web", "training": "emotiond.training",
           "benchmarks": "emotiond.benchmarks"}


def package_modules(repo: Path) -> dict[str, Path]:
    """Every module of the installed package, by dotted name."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((repo / folder).glob("*.py")):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def imported_names(path: Path, module: str) -> set[str]:
    """Absolute names of the emotiond modules a file imports, wherever the import statement stands."""
    names: set[str] = set()
    package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "emotiond" or n.startswith("emotiond.")}


def import_graph(repo: Path) -> dict[str, set[str]]:
    modules = package_modules(repo)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = {name for name in imported_names(path, module) if name in modules and name != module}
    return graph


# Folders that belong to their parent's unit: clients/web is the clients layer's console, split out for size
# (daemon/core and daemon/capture are units of their own because they are layers below daemon/).
PART_OF = {"emotiond.clients.web": "emotiond.clients"}


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages = set(FOLDERS.values())

    def folder(module: str) -> str:
        package = module if module in packages else module.rsplit(".", 1)[0]
        return PART_OF.get(package, package)

    folders: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        for target in targets:
            if folder(target) != folder(module):
                folders[folder(module)].add(folder(target))
    return folders


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of its members, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module: str) -> int:
    best = max((name for name in LAYERS if module == name or module.startswith(name + ".")), key=len)
    return LAYERS[best]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if layer_of(target) > layer_of(module))


def test_the_graph_sees_imports_in_functions_and_type_checking_blocks(tmp_path):
    """A positive control for the parser: each kind of import statement is found."""
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from emotiond.clients import b\n"
        "def f():\n    import emotiond.training.c\n    from . import d\n")
    found = imported_names(tmp_path / "workers" / "a.py", "emotiond.workers.a")
    assert {"emotiond.clients.b", "emotiond.training.c", "emotiond.workers.d"} <= found


@pytest.mark.parametrize(("graph", "cycle"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
])
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle


def test_upward_imports_are_reported():
    assert upward_imports({"emotiond.workers.x": {"emotiond.daemon.supervisor", "emotiond.daemon.core.bus"}}) == [
        "emotiond.workers.x -> emotiond.daemon.supervisor"]


def test_every_package_folder_is_scanned():
    """A new subpackage must be listed in FOLDERS, or its imports would go unchecked."""
    packages = {str(init.parent.relative_to(REPO)) for init in REPO.glob("**/__init__.py")
                if not {".venv", "tests", "node_modules", "build"} & set(init.parts)}
    assert packages - {"."} <= set(FOLDERS), sorted(packages - {"."} - set(FOLDERS))


def test_every_folder_has_a_layer():
    graph = import_graph(REPO)
    assert len(graph) > 70, "the parser found too few modules"
    assert sum(len(targets) for targets in graph.values()) > 150, "the parser found too few imports"
    for module in graph:
        layer_of(module)  # raises for a module outside every layer


def test_no_module_imports_upward():
    assert upward_imports(import_graph(REPO)) == []


def test_no_import_circles_between_modules():
    assert find_cycle(import_graph(REPO)) is None


def test_no_import_circles_between_folders():
    assert find_cycle(folder_graph(import_graph(REPO))) is None
