"""The package's shape, read from its source: stages in layers, no import cycle, small functions, no Airflow
below `ml_batch/airflow/`.

Layers, lowest first (`LAYERS`): a module imports only modules of its own layer or lower ones, whether the
import is at the top of the file or inside a function (a lazy import is still a dependency). Imports under
`if TYPE_CHECKING:` are annotations only: they count for the layers, not for cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ml_batch"

# Lowest first. Core is the package root's modules: what every stage may use.
LAYERS = ("core", "db", "ops", "validation", "model", "run", "monitoring", "promotion", "ui", "airflow", "demo", "cli")
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported ml_batch module
    line: int
    typing_only: bool


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        if "migrations" in relative.parts:
            continue  # alembic revisions import nothing of ml_batch by rule (they must stay as they were written)
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> str:
    """The stage a module belongs to: its subpackage of ml_batch, or "core" for the package root's modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1] / "__init__.py").is_file() else "core"


def _resolve(module: str, name: str | None) -> str | None:
    """The ml_batch module an import names (`from ml_batch.run import plan` names `ml_batch.run.plan`)."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module if module in MODULES else None


def _imports(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text())
    typing_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [_resolve(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [_resolve(alias.name, None) for alias in node.names]
        else:
            continue
        for target in targets:
            if target is not None and target.startswith("ml_batch") and target != module:
                yield Import(module, target, node.lineno, node.lineno in typing_lines)


IMPORTS = [found for module, path in MODULES.items() for found in _imports(module, path)]


def test_every_module_is_in_a_layer() -> None:
    assert {_layer(module) for module in MODULES} <= set(LAYERS)


def test_stages_import_only_their_own_layer_or_lower_ones() -> None:
    upward = [f"{i.source} (layer {_layer(i.source)}) imports {i.target} (layer {_layer(i.target)}), line {i.line}"
              for i in IMPORTS if LAYERS.index(_layer(i.target)) > LAYERS.index(_layer(i.source))]
    assert upward == [], "\n".join(upward)


def test_no_module_imports_itself_back_through_others() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for found in IMPORTS:
        if not found.typing_only:
            graph[found.source].add(found.target)
    cycles = [sorted(component) for component in _strongly_connected(graph) if len(component) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_only_ml_batch_airflow_imports_airflow() -> None:
    offenders = []
    for module, path in MODULES.items():
        if _layer(module) == "airflow":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [f"{module}:{node.lineno} imports {name}" for name in names
                          if name.split(".")[0] == "airflow"]
    assert offenders == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_functions_stay_small(module: str) -> None:
    long = [f"{node.name} (line {node.lineno}): {lines} lines" for node, lines in _function_lengths(MODULES[module])
            if lines > MAX_FUNCTION_LINES]
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines (docstring and nested functions excluded)"


def test_the_architecture_checks_can_fail() -> None:
    """The checks find what they look for (so a passing run means something)."""
    assert sorted(map(sorted, _strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}))) == [["a", "b"], ["c"]]
    source = "def f():\n    '''doc'''\n" + "    x = 1\n" * 61 + "    def g():\n" + "        y = 2\n" * 70
    [(f, f_lines), (g, g_lines)] = sorted(_function_lengths_of(ast.parse(source)), key=lambda item: item[0].name)
    assert (f.name, f_lines, g.name, g_lines) == ("f", 61, "g", 70)
    assert _layer("ml_batch.run.plan") == "run" and _layer("ml_batch.spec") == "core"


def _function_lengths(path: Path) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, int]]:
    return _function_lengths_of(ast.parse(path.read_text()))


def _function_lengths_of(tree: ast.AST) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, int]]:
    """Each function's own lines: its body without its docstring and without the bodies of nested functions."""
    result = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body[1:] if ast.get_docstring(node) is not None else node.body
        lines = {line for stmt in body for line in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)}
        for inner in ast.walk(node):
            if inner is not node and isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                lines -= set(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
        result.append((node, len(lines)))
    return result


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of a directed graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return components
