"""The import graph: data flows one way, data → patches → selection → models → engine → cli.

Every module under dbps/ is parsed (nothing is imported) and every import of a dbps module is an edge, whether at
module level or inside a function. Each module stands on a floor; a module may import its own floor and the
floors below, never one above. The base modules (config, files, registry, tasks, metrics, safe_load, the preset
files) stand below every floor and import only each other. `import dbps` must also leave the process as it was.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dbps"

BASE = -1
FLOORS = {"data": 0, "wsi": 0, "patches": 1, "selection": 2, "models": 3, "engine": 4, "bench": 4, "viz": 4, "cli": 5,
          "__main__": 5}
BASE_MODULES = {"choices", "config", "configs", "files", "registry", "tasks", "metrics", "safe_load"}
PUBLIC_API = 5  # dbps/__init__.py gathers the public names of every floor: it stands at the top, with the cli

def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str:
    """The module a dotted name lives in (`dbps.models.PatchEncoder` → `dbps.models`)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


class _Imports(ast.NodeVisitor):
    """Every dbps module a file imports, and whether the import runs when the module is imported."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rsplit(".", 1)[0]
        self.depth = 0
        self.found: list[tuple[str, bool]] = []  # (module, at module level)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, name: str) -> None:
        if name == "dbps" or name.startswith("dbps."):
            self.found.append((_owner(name), self.depth == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
        else:
            module = node.module or ""
        for alias in node.names:
            self._add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module)


def _edges() -> list[tuple[str, str, bool]]:
    edges = []
    for module, path in MODULES.items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        edges += [(module, imported, top) for imported, top in visitor.found if imported != module]
    return edges


EDGES = _edges()


def floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return PUBLIC_API
    if parts[1] in BASE_MODULES:
        return BASE
    return FLOORS[parts[1]]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_floor() -> None:
    for module in MODULES:
        floor(module)  # a KeyError names a package that is on no floor yet


def test_the_graph_sees_imports_at_module_and_function_level() -> None:
    edges = {(a, b): top for a, b, top in EDGES}
    assert edges[("dbps.engine.build", "dbps.models")] is True
    assert edges[("dbps.metrics", "dbps.tasks")] is True
    assert any(not top for top in edges.values()), "no import inside a function found"


def test_no_import_circle_at_module_level() -> None:
    graph: dict[str, set[str]] = {}
    for importer, imported, top in EDGES:
        if top:
            graph.setdefault(importer, set()).add(imported)
    circles = _cycles(graph)
    assert not circles, "modules that import each other at module level:\n" + "\n".join(
        " ↔ ".join(circle) for circle in circles
    )


def test_no_import_goes_up_a_floor() -> None:
    upward = sorted({(a, b) for a, b, _ in EDGES if floor(b) > floor(a)})
    offenders = [f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})" for a, b in upward]
    assert not offenders, "imports from a lower floor to a higher one:\n" + "\n".join(offenders)


def test_import_dbps_registers_no_global_optimizer_hooks_nor_imports_slow_packages() -> None:
    """In a fresh process. torch._dynamo costs seconds of every command's start; it loads when something compiles
    (or makes an optimiser), never on import. scikit-learn (1.5 s) is not needed to score a validation set."""
    code = (
        "import sys, numpy, dbps, dbps.metrics as m, torch.optim.optimizer as o; "
        "from dbps.tasks import TaskSpec; "
        "m.task_metrics(TaskSpec('t', 3), numpy.eye(3), numpy.arange(3)); "
        "print(len(o._global_optimizer_pre_hooks), len(o._global_optimizer_post_hooks), "
        "'torch._dynamo' in sys.modules, 'sklearn' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True
    )
    hooks, dynamo, sklearn = result.stdout.split()[:2], result.stdout.split()[2], result.stdout.split()[3]
    assert hooks == ["0", "0"], f"import dbps left optimizer step hooks: {result.stdout}"
    assert dynamo == "False", "import dbps imported torch._dynamo"
    assert sklearn == "False", "scoring a task imported scikit-learn"
