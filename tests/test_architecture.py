"""The layering of docs/architecture.md, checked on the source: who may import whom, no import circles,
spconv only behind models/sparse_backend.py, the library never importing the CLI's commands, and the size
limits on files and functions where they hold so far."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

BASE = {"errors", "config", "engine"}
# top-level part of pri3d -> the parts it may import (module- or function-level). Keep in step with
# docs/architecture.md.
ALLOWED = {
    "pri3d": set(),  # the package __init__: the version only
    "errors": set(),
    "config": {"errors"},
    "engine": {"errors", "config"},
    "geometry": {"errors"},
    "viz": set(),
    "data": BASE | {"geometry"},
    "pairs": BASE | {"geometry", "data"},
    "models": BASE,
    "losses": BASE | {"geometry"},
    "pretrain": BASE | {"geometry", "data", "pairs", "models", "losses", "viz"},
    "downstream": BASE | {"data", "models", "viz"},
    # probe: downstream only for its two pure modules, classes and metrics (checked below)
    "probe": BASE | {"geometry", "data", "pairs", "models", "viz", "downstream"},
    "export": BASE | {"models"},
    "experiment": BASE | {"geometry", "data", "pairs", "models", "losses", "pretrain", "downstream", "probe", "viz"},
    "demo": BASE | {"geometry", "data", "pairs", "models", "pretrain", "downstream", "probe", "experiment", "viz"},
    "commands": BASE
    | {"pri3d", "geometry", "data", "pairs", "models", "pretrain", "downstream", "probe", "export"}
    | {"experiment", "demo"},
    "cli": {"pri3d", "errors"},  # commands are imported by name, on use (importlib)
}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in (SRC / "pri3d").rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the pri3d modules (and 'spconv...') it imports anywhere in its body."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges = defaultdict(set)
    for m, p in mods.items():
        for n in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(n, ast.ImportFrom) and n.level:
                raise AssertionError(f"{p}: relative import (use absolute pri3d.* imports)")
            if isinstance(n, ast.ImportFrom) and n.module:
                names = [f"{n.module}.{a.name}" for a in n.names] if n.module.startswith("pri3d") else [n.module]
            elif isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            for name in names:
                if name.startswith("spconv"):
                    edges[m].add("spconv")
                elif name.startswith("pri3d") and (t := resolve(name)) and t != m:
                    edges[m].add(t)
    return edges


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pri3d"


MODS = _modules()
EDGES = _imports(MODS)


def test_every_part_is_in_the_table():
    assert {_part(m) for m in MODS} <= set(ALLOWED), "a new top-level part: add it to ALLOWED and the docs"


def test_each_part_imports_only_what_the_layering_allows():
    bad = sorted(
        f"{m} imports {t}"
        for m, ts in EDGES.items()
        for t in ts
        if t != "spconv" and _part(t) != _part(m) and _part(t) not in ALLOWED[_part(m)]
    )
    assert not bad, "\n".join(bad)


def test_probe_takes_only_the_label_sets_and_the_metrics_from_downstream():
    # A probe reads a backbone and datasets; it shares fine-tuning's label mapping and its mIoU definition
    # (so the two read-outs are comparable) and nothing else of downstream/ (no datasets, no loop).
    used = sorted({t for m, ts in EDGES.items() if _part(m) == "probe" for t in ts if _part(t) == "downstream"})
    assert set(used) <= {"pri3d.downstream.classes", "pri3d.downstream.metrics"}, used
    for m in ("pri3d.downstream.classes", "pri3d.downstream.metrics"):
        assert not {t for t in EDGES.get(m, ()) if _part(t) == "downstream"}, f"{m} must stay a leaf of downstream/"
    assert not [m for m, ts in EDGES.items() if _part(m) == "probe" for t in ts if _part(t) == "pretrain"]


def test_no_import_circles():
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in EDGES.get(v, ()):
            if w == "spconv":
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(MODS):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_spconv_only_behind_the_sparse_backend_and_the_library_never_imports_commands():
    assert sorted(m for m, ts in EDGES.items() if "spconv" in ts) == ["pri3d.models.sparse_backend"]
    users = sorted(m for m, ts in EDGES.items() for t in ts if _part(t) == "commands" and _part(m) != "commands")
    assert users == [], users


def _loaded_in_fresh_interpreter(modules: str, package: str) -> str:
    """The modules of ``package`` that importing ``modules`` (comma-separated) loads, in a fresh Python."""
    code = f"import sys\nimport {modules}\nprint(sorted(m for m in sys.modules if m.split('.')[0] == {package!r}))\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_2d_only_work_does_not_load_spconv():
    modules = (
        "pri3d.cli, pri3d.downstream.loop, pri3d.downstream.semseg, pri3d.downstream.detection, "
        "pri3d.export, pri3d.data.formats, pri3d.geometry, pri3d.engine.io, pri3d.probe"
    )
    assert _loaded_in_fresh_interpreter(modules, "spconv") == "[]"


def test_the_graph_sees_function_level_imports():
    assert "pri3d.pretrain.method" in EDGES["pri3d.pretrain.modes"]  # imported inside a builder
    assert "pri3d.viz" in EDGES["pri3d.pretrain.report"]
    assert "spconv" in EDGES["pri3d.models.sparse_backend"]


# The one training step (issue 23): only engine/step.py runs a backward pass. The exception, argued: the
# probe's logistic-regression head is fitted by full-batch L-BFGS on frozen features, whose closure must
# return the loss with its gradient; it trains no network (no autocast, ranks, accumulation or clipping).
BACKWARD_EXCEPTIONS = {"pri3d.probe.head"}


def _backward_callers() -> set[str]:
    """Modules with a ``x.backward(...)`` or ``torch.autograd.backward(...)`` call anywhere in their body."""
    found = set()
    for m, p in MODS.items():
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "backward":
                found.add(m)
    return found


def test_only_the_engine_calls_backward():
    callers = _backward_callers()
    assert "pri3d.engine.step" in callers  # the check sees the one training step
    assert sorted(m for m in callers - BACKWARD_EXCEPTIONS if _part(m) != "engine") == []


# ---------------------------------------------------------------- one config builder (issue 23)


def _callers(name: str, attributes: bool = True) -> set[str]:
    """Modules that call a function ``name(...)`` (and ``x.name(...)`` when ``attributes``)."""
    found = set()
    for m, p in MODS.items():
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Call):
                f = n.func
                if (isinstance(f, ast.Name) and f.id == name) or (
                    attributes and isinstance(f, ast.Attribute) and f.attr == name
                ):
                    found.add(m)
    return found


def test_configs_are_built_in_one_place():
    # pri3d.config.resolve (preset, overrides, then the caller's typed values) builds every config of a preset:
    # no other module reads a preset or merges overrides into one. The one other merge is the experiment plan
    # (experiment/config.load_experiment: a file, never a preset).
    assert _callers("load_preset") == {"pri3d.config"}
    assert _callers("apply_overrides") == {"pri3d.config", "pri3d.experiment.config"}
    users = {"pri3d.commands.pretrain", "pri3d.downstream.config", "pri3d.experiment.cells"}
    assert users <= _callers("resolve", attributes=False)
    gone = {"load_config", "_build", "finetune_config"}  # the earlier copies of the builder
    left = [
        f"{m}.{n.name}"
        for m, p in MODS.items()
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.FunctionDef) and n.name in gone
    ]
    assert left == [], left


# ---------------------------------------------------------------- sizes a reader can hold (issue 23)

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80  # its docstring not counted
# Both limits hold on all of src/ (tests are not limited).
FILE_LIMITED = ["."]
FUNCTION_LIMITED = ["."]


def _files(parts: list[str]) -> list[Path]:
    root = SRC / "pri3d"
    files = sorted(
        p for part in parts for p in ([root / part] if part.endswith(".py") else (root / part).rglob("*.py"))
    )
    assert len(files) > 100, "the size checks must see the whole package"
    return files


def _function_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the end of the body, without the docstring's lines."""
    n = fn.end_lineno - fn.lineno + 1
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        n -= first.end_lineno - first.lineno + 1
    return n


def test_no_file_over_the_line_limit():
    long = [
        f"{p.relative_to(SRC)}: {n}"
        for p in _files(FILE_LIMITED)
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_the_line_limit():
    long = [
        f"{p.relative_to(SRC)}:{fn.lineno} {fn.name}: {n} lines"
        for p in _files(FUNCTION_LIMITED)
        for fn in ast.walk(ast.parse(p.read_text()))
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and (n := _function_lines(fn)) > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (docstring not counted): {long}"


def test_the_function_limit_does_not_count_the_docstring():
    fn = ast.parse('def f():\n    """One\n    two."""\n    return 1\n').body[0]
    assert _function_lines(fn) == 2


# ---------------------------------------------------------------- geometry/ owns every formula (issue 23)

# The pinhole back-projection x = (u - cx) / fx: subtracting a principal point (a name ``cx``/``cy``/``c_x``
# or an intrinsics entry ``K...[..., 0, 2]`` / ``[1, 2]``) and dividing the difference by something.
_BACKPROJECTION = re.compile(r"-\s*(?:\bc_?[xy]\b|\w*K\w*\[[^\]]*\b[01],\s*2\b[^\]]*\])\s*\)\s*/")
RAY_FUNCTION = ("pri3d/geometry/rays.py", "pixel_rays")


def _code_lines(text: str) -> dict[int, str]:
    """Line number -> the line's code without its strings (docstrings included) and comments."""
    keep: dict[int, list[str]] = defaultdict(list)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type >= tokenize.N_TOKENS:
            continue
        if sys.version_info >= (3, 12) and tok.type in (tokenize.FSTRING_START, tokenize.FSTRING_MIDDLE):
            continue
        keep[tok.start[0]].append(tok.string)
    return {n: " ".join(parts) for n, parts in keep.items()}


def _enclosing_function(tree: ast.AST, line: int) -> str:
    names = [
        n.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.lineno <= line <= n.end_lineno
    ]
    return names[-1] if names else "<module>"


def _backprojections() -> list[tuple[str, str, int]]:
    found = []
    for p in sorted((SRC / "pri3d").rglob("*.py")):
        text = p.read_text()
        # the tokens of a line are joined with spaces: match the formula on the re-spaced code
        hits = [n for n, code in _code_lines(text).items() if _BACKPROJECTION.search(code.replace(" ", ""))]
        tree = ast.parse(text) if hits else None
        found += [(str(p.relative_to(SRC)), _enclosing_function(tree, n), n) for n in hits]
    return found


def test_the_backprojection_formula_is_written_once():
    # Every pixel -> ray computation (depth maps to points, the miner's rays and boxes, frustum corners,
    # fusion, training correspondences, the synthetic renderer) calls geometry/rays.py:pixel_rays.
    found = _backprojections()
    assert [(f, fn) for f, fn, _ in found] == [RAY_FUNCTION], found


def test_the_backprojection_scan_finds_the_forms_it_guards():
    samples = [
        "x = (u - K[0, 2]) / K[0, 0]",
        "x = (uv[..., 0] - cx) / fx * depth",
        "y = (v[None, :] - Kt[:, 1, 2, None]) / Kt[:, 1, 1, None]",
        "x = (u - Kab[:, 0, 2]) / Kab[:, 0, 0] * z",
        "rays = np.stack([(u - K[0,2]) / K[0,0], (v - K[1, 2]) / K[1, 1]])",
    ]
    for s in samples:
        assert _BACKPROJECTION.search(_code_lines(s + "\n")[1].replace(" ", "")), s
    for s in ['doc = "x = (u - cx) / fx"', "u = K[0, 0] * x / z + K[0, 2]", "K[0, 2] = width - 1 - K[0, 2]"]:
        assert not _BACKPROJECTION.search(_code_lines(s + "\n")[1].replace(" ", "")), s


def test_the_synthetic_renderer_imports_no_torch():
    # pixel_rays lives in a module that imports nothing, and geometry/__init__ loads its names lazily, so
    # the renderer's workers stay light (data/synth/__init__.py promises it).
    modules = "pri3d.data.synth, pri3d.data.synth.render, pri3d.geometry.rays"
    assert _loaded_in_fresh_interpreter(modules, "torch") == "[]"


def test_benchmarks_import_only_names_that_exist():
    """The benchmarks are not run by the suite; their imports from pri3d must still resolve (a moved
    function once left ``bench_pretrain.py`` importing a name that no longer existed)."""
    import importlib

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    missing = []
    for path in sorted(bench.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pri3d":
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name):
                        try:
                            importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            missing.append(f"{path.name}: {node.module}.{alias.name}")
    assert not missing, missing
