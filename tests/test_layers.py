"""The layers hold for the whole project: ingestion imports nothing of ours, assistant only ingestion, evals both,
app.py everything, nobody imports app.py or scripts/, and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = ("ingestion", "assistant", "evals")
# who may import whom (the first part of a module name; "app" is app.py)
ALLOWED = {"ingestion": {"ingestion"}, "assistant": {"ingestion", "assistant"},
           "evals": {"ingestion", "assistant", "evals"}, "app": {"ingestion", "assistant", "evals"}}
OURS = set(ALLOWED) | {"scripts", "benchmarks", "tests"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Modules of ours that ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from . import x` may name a module
    return {m for m in found if m.split(".")[0] in OURS}


def project_modules() -> dict[str, Path]:
    paths = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")] + [ROOT / "app.py"]
    return {module_name(p): p for p in paths}


def test_every_module_imports_only_the_layers_below_it():
    for name, path in project_modules().items():
        layer = name.split(".")[0]
        wrong = {m for m in imports(path, top_level_only=False) if m.split(".")[0] not in ALLOWED[layer]}
        assert not wrong, f"{name} imports {sorted(wrong)}"


def test_no_module_imports_itself_back_when_loaded():
    modules = project_modules()
    graph = {name: {m for m in imports(path, top_level_only=True) if m in modules and m != name}
             for name, path in modules.items()}

    def reaches(start: str, goal: str, seen: frozenset[str]) -> bool:
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt}) for nxt in graph[start] - seen)

    cycles = sorted(name for name in graph if reaches(name, name, frozenset()))
    assert not cycles, cycles
