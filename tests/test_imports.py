"""The import graph of src/pri3d (module-level and function-level imports): no circles, nothing upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pri3d

SRC = Path(pri3d.__file__).resolve().parents[1]
LIBRARY = ("pri3d.pretrain", "pri3d.downstream", "pri3d.engine", "pri3d.data", "pri3d.geometry", "pri3d.models")
LIBRARY += ("pri3d.losses", "pri3d.viz", "pri3d.config", "pri3d.errors")
TOP = ("pri3d.experiment", "pri3d.demo", "pri3d.commands", "pri3d.cli")


def _modules() -> dict[str, Path]:
    mods = {}
    for f in (SRC / "pri3d").rglob("*.py"):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def _imports(name: str, f: Path, mods: dict) -> set[str]:
    """The pri3d modules ``name`` imports anywhere in its file (``from a import b``: ``a.b`` when that is a
    module, else ``a``)."""
    pkg = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            found = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        else:
            continue
        for t in found:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t.startswith("pri3d") and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, f, mods) for name, f in mods.items()}


def test_no_import_circles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(v, path):
        state[v] = 1
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                circles.append(path[path.index(w) :] + [w])
            elif w not in state:
                visit(w, path + [w])
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v, [v])
    assert circles == []


def test_nothing_imports_upward():
    bad = [
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in targets
        if (a.startswith(LIBRARY) and b.startswith(TOP))
        or (b.startswith("pri3d.commands") and not a.startswith(("pri3d.commands", "pri3d.cli")))
    ]
    assert bad == []


def test_the_graph_sees_function_level_imports():
    graph = _graph()
    assert "pri3d.pretrain.method" in graph["pri3d.pretrain.modes"]  # imported inside a builder
    assert "pri3d.viz" in graph["pri3d.pretrain.report"]
