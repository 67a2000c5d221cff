"""The layout says who runs what: imports between the top-level packages point one way, no
module imports itself through a circle, and no project import is guarded by a fallback.

Imports are read from the source (module level and inside functions alike), so a lazy import
that would close a circle or cross sides fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("federation", "clients", "server", "contracts", "iot", "proto", "yinqi")
# Which of the project's packages each package may import (besides itself).
ALLOWED = {
    "federation": set(),
    "proto": {"federation"},
    "contracts": {"federation"},
    "iot": {"federation", "proto"},
    "clients": {"federation", "proto"},
    "server": {"federation", "proto", "contracts"},
    "yinqi": {"federation", "proto", "contracts", "iot", "clients", "server"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a project module in `path`, resolved to a module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] in PACKAGES:
                out.append((node.lineno, name))
    return out


GRAPH = {name: {target for _, target in _project_imports(path)} - {name} for name, path in MODULES.items()}


def test_packages_import_only_what_they_may():
    crossings = []
    for name, path in MODULES.items():
        package = name.split(".")[0]
        for line, target in _project_imports(path):
            other = target.split(".")[0]
            if other != package and other not in ALLOWED[package]:
                crossings.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert crossings == []


def test_server_and_clients_never_import_each_other():
    crossings = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if {name.split(".")[0], target.split(".")[0]} == {"server", "clients"}
    ]
    assert crossings == []


def _cycle_from(start: str) -> list[str] | None:
    """A shortest import circle through `start`, or None."""
    paths = {target: [start, target] for target in GRAPH[start]}
    frontier = list(paths)
    while frontier:
        nxt = []
        for module in frontier:
            if module == start:
                return paths[module]
            for target in GRAPH.get(module, ()):
                if target not in paths:
                    paths[target] = [*paths[module], target]
                    nxt.append(target)
        frontier = nxt
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_itself_through_a_circle(package):
    cycles = {" -> ".join(c) for m in MODULES if m.split(".")[0] == package and (c := _cycle_from(m))}
    assert sorted(cycles) == []


def test_no_project_import_is_guarded_by_a_fallback():
    guarded = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Try):
                continue
            catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not catches & {"ImportError", "ModuleNotFoundError"}:
                continue
            inner = ast.Module(body=node.body, type_ignores=[])
            for child in ast.walk(inner):
                module = getattr(child, "module", None) or ""
                names = [a.name for a in getattr(child, "names", [])] if isinstance(child, ast.Import) else [module]
                if any(n.split(".")[0] in PACKAGES for n in names):
                    guarded.append(f"{path.relative_to(ROOT)}:{child.lineno}")
    assert guarded == []
