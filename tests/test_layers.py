"""The layer order of the code, enforced by parsing every import (module level, in functions, and type-only).

Each top-level folder is one layer, and LAYERS lists them bottom to top: a folder imports only folders on a lower
line, never one beside it or above it, so neither modules nor folders can import in a circle.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from support.daemon import REPO

LAYERS: list[tuple[str, ...]] = [
    ("core",),                   # contracts: wire protocol, settings, model bundle, bus, metrics, errors
    ("capture", "workers"),      # frame sources and capture; the one inference pipeline
    ("daemon",),                 # supervisor, proxy, keys and the run / capture / worker commands
    ("clients", "training"),     # events, view, log, analyze, mqtt, web, the Python API; training
    ("benchmarks",),
    ("",),                       # the package root: the command line and the public API
]
IGNORED = {".venv", "tests", "node_modules", "build", "examples", "docs", "config", ".git"}


def level_of(folder: str) -> int:
    for level, folders in enumerate(LAYERS):
        if folder in folders:
            return level
    raise AssertionError(f"top-level folder {folder!r} has no layer in LAYERS")


def python_files(repo: Path) -> list[Path]:
    """Every .py file outside IGNORED; the walk never enters an ignored folder (the venv alone holds tens of
    thousands of files)."""
    found = []
    for folder, subfolders, files in os.walk(repo):
        subfolders[:] = [name for name in subfolders if name not in IGNORED]
        found += [Path(folder) / name for name in files if name.endswith(".py")]
    return sorted(found)


def package_modules(repo: Path) -> dict[str, Path]:
    """Every module of the installed package, by dotted name (the repository root is ``emotiond``)."""
    modules = {}
    for path in python_files(repo):
        relative = path.relative_to(repo)
        if IGNORED & set(relative.parts) or not (path.parent / "__init__.py").is_file():
            continue
        parts = ["emotiond", *relative.parent.parts]
        modules[".".join(parts if path.stem == "__init__" else [*parts, path.stem])] = path
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


def folder_of(module: str, graph: dict[str, set[str]] | None = None) -> str:
    """The top-level folder of a module: ``emotiond.clients.mqtt.bridge`` -> ``clients``; root modules -> ``""``."""
    parts = module.split(".")
    if len(parts) == 2 and graph is not None and not any(m.startswith(module + ".") for m in graph):
        return ""  # a module file at the root (emotiond.__main__)
    return parts[1] if len(parts) > 1 else ""


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    folders: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = folder_of(module, graph)
        folders.setdefault(source, set())
        for target in targets:
            if folder_of(target, graph) != source:
                folders[source].add(folder_of(target, graph))
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


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a folder on the same line of LAYERS or above."""
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if folder_of(target, graph) != folder_of(module, graph)
                  and level_of(folder_of(target, graph)) >= level_of(folder_of(module, graph)))


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


@pytest.mark.parametrize(("imports", "forbidden"), [
    ({"emotiond.workers.x": {"emotiond.daemon.supervisor", "emotiond.core.bus"}},
     ["emotiond.workers.x -> emotiond.daemon.supervisor"]),
    ({"emotiond.workers.x": {"emotiond.capture.sources"}}, ["emotiond.workers.x -> emotiond.capture.sources"]),
    ({"emotiond.clients.mqtt.bridge": {"emotiond.clients.subscribe", "emotiond.daemon.cli"}}, []),
    ({"emotiond.core.protocol": {"emotiond.__main__"}, "emotiond.__main__": set()},
     ["emotiond.core.protocol -> emotiond.__main__"]),
])
def test_imports_of_a_folder_beside_or_above_are_reported(imports, forbidden):
    assert forbidden_imports(imports) == forbidden


def test_every_top_level_package_folder_has_a_layer():
    """A new top-level folder must be placed in LAYERS, or its imports would go unchecked."""
    folders = {init.parent.relative_to(REPO).parts[0] for init in REPO.glob("*/__init__.py")
               if init.parent.name not in IGNORED}
    assert folders == {f for line in LAYERS for f in line if f}, folders


def test_every_module_is_scanned():
    graph = import_graph(REPO)
    assert len(graph) > 130, "the parser found too few modules"
    assert sum(len(targets) for targets in graph.values()) > 300, "the parser found too few imports"
    assert "emotiond.clients.analyze.engines.local" in graph and "emotiond.__main__" in graph


def test_no_folder_imports_beside_or_above_itself():
    assert forbidden_imports(import_graph(REPO)) == []


def test_no_import_circles_between_modules():
    assert find_cycle(import_graph(REPO)) is None


def test_no_import_circles_between_folders():
    assert find_cycle(folder_graph(import_graph(REPO))) is None


def test_no_client_folder_holds_a_family_of_prefixed_modules():
    """One subpackage per client: three modules sharing a name prefix (mqtt_*.py) belong in a folder of their own."""
    for folder in [REPO / "clients", *(p.parent for p in (REPO / "clients").glob("*/__init__.py"))]:
        prefixes: dict[str, list[str]] = {}
        for path in folder.glob("*.py"):
            if "_" in path.stem.strip("_"):
                prefixes.setdefault(path.stem.split("_")[0], []).append(path.name)
        assert all(len(names) < 3 for names in prefixes.values()), prefixes


def test_no_two_classes_share_a_name():
    """Two classes of one name (there were two ``Outbox`` classes) make every import, traceback and review ask which
    one is meant. The top-level classes of every module are read with ast; a name may stand in one module only."""
    owners: dict[str, list[str]] = {}
    for module, path in package_modules(REPO).items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                owners.setdefault(node.name, []).append(module)
    assert len(owners) > 150 and "Subscription" in owners, "the scan found too few classes"
    shared = {name: sorted(modules) for name, modules in owners.items() if len(modules) > 1}
    assert shared == {}, "classes that share a name"
