"""The shape of the package, checked from its source: no import cycles (lazy imports inside functions count
too), typer only in the command-line modules, and one implementation of each figure, verdict table and
job path."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "glazeish"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """glazeish modules that ``name`` imports anywhere in its source (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # ``from pkg import module`` imports the module, not the package
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_only_the_command_line_modules_import_typer():
    users = {name for name, path in _modules().items()
             if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "typer" in ast.dump(n)
                    for n in ast.walk(ast.parse(path.read_text())))}
    assert users == {"glazeish.cli", "glazeish.bench.cli"}


def _definitions(kind) -> dict[str, list[str]]:
    """Where each top-level/nested function or class name, or module-level assignment, is defined."""
    where: dict[str, list[str]] = defaultdict(list)
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if kind == "def" and isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                where[node.name].append(name)
            if kind == "assign" and isinstance(node, (ast.Assign, ast.AnnAssign)):
                for t in getattr(node, "targets", None) or [node.target]:
                    if isinstance(t, ast.Name):
                        where[t.id].append(name)
    return where


def test_each_figure_verdict_table_and_job_path_has_one_implementation():
    defs = _definitions("def")
    # the figures: latent displacement and the mimic's view are measured only by the Evaluator; the noise
    # baselines, retention and the gap/ratio arithmetic are defined once
    for fn, home in [("Evaluator", "glazeish.evaluation.measure"), ("compare", "glazeish.evaluation.measure"),
                     ("same_psnr_noise", "glazeish.evaluation.baselines"),
                     ("uniform_noise", "glazeish.evaluation.baselines"), ("retained", "glazeish.evaluation.figures"),
                     ("view_gap", "glazeish.evaluation.figures"), ("latent_ratio", "glazeish.evaluation.figures"),
                     ("assess", "glazeish.evaluation.assess"), ("judge", "glazeish.evaluation.verdicts"),
                     ("amplified_delta", "glazeish.report"), ("pad_to_multiple", "glazeish.imageio"),
                     ("first_with_decoder", "glazeish.encoders"), ("cloak_file", "glazeish.job"),
                     ("parse_spec", "glazeish.registry")]:
        assert defs[fn] == [home], (fn, defs[fn])
    # the verdict thresholds and words live in one table each
    assigns = _definitions("assign")
    for table in ("VISIBILITY", "PROTECTION", "SURVIVAL", "NO_BETTER_DB", "PURIFICATION_WORDS"):
        assert assigns[table] == ["glazeish.evaluation.verdicts"], (table, assigns[table])
    # nobody else computes a relative latent distance or decodes for a figure
    for name, path in _modules().items():
        text = path.read_text()
        if name not in ("glazeish.evaluation.measure", "glazeish.metrics"):
            assert '"dz"' not in text and "relative_l2(" not in text, name


def test_one_registry_protocol():
    from glazeish.bench.protections import PROTECTIONS
    from glazeish.encoders import ENCODERS
    from glazeish.objectives import OBJECTIVES
    from glazeish.purify import PURIFICATIONS
    from glazeish.registry import Registry
    from glazeish.transforms import TRANSFORMS

    for reg in (ENCODERS, OBJECTIVES, TRANSFORMS, PURIFICATIONS, PROTECTIONS):
        assert isinstance(reg, Registry) and len(reg) > 0
    # every kind is built from a spec the same way: Registry.build -> entry.from_spec(arg, **context)
    assert {"build", "build_all", "help"} <= set(dir(Registry))


BENCH = PKG.parent / "benchmarks"
#: what a benchmark script may import besides the standard library, glazeish and ``benchmarks/common.py``
THIRD_PARTY = {"numpy", "torch", "PIL", "matplotlib", "ray"}


def _benchmark_scripts() -> list[Path]:
    return sorted(p for p in BENCH.rglob("*.py") if "_scratch" not in p.parts)


def _benchmark_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) of every import in a script, top level or inside functions."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: relative import"
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_benchmarks_import_only_glazeish_public_modules_and_common():
    """A suite measures through glazeish and shares through ``benchmarks/common.py``: it never reaches into
    another suite (``from search import ...``) or into a private part of glazeish."""
    import sys

    modules = _modules()
    scripts = _benchmark_scripts()
    assert len(scripts) > 10
    for path in scripts:
        for module, names in _benchmark_imports(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(BENCH)} imports {module}"
            if top == "glazeish":
                assert module in modules, where
                assert not any(part.startswith("_") for part in module.split(".")), where
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]  # __version__ is public
                assert not private, (where, private)
            else:
                assert module == "common" or top in THIRD_PARTY or top in sys.stdlib_module_names, where


def test_benchmarks_compute_no_figure_of_their_own():
    """PSNR is computed in glazeish (the metrics and the Evaluator), never in a benchmark script; a suite's
    shared paths come from common.py, not from its own copy."""
    for path in _benchmark_scripts():
        text = path.read_text()
        rel = path.relative_to(BENCH)
        assert "log10" not in text, f"{rel} computes a PSNR of its own"
        if path.name != "common.py":
            assert not re.search(r"environ(\.get\(|\[)\s*.GLAZEISH_(SHARED|MODELS)", text), \
                f"{rel} finds the shared folder itself (common.SHARED, common.MODELS)"
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef):
                    assert node.name not in ("psnr", "psnr8", "vpsnr", "jpeg", "linf_levels", "pick_images",
                                             "centre_crop", "list_images"), f"{rel} defines {node.name} again"
