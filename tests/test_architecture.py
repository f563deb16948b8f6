"""The package's layering, read from its source: no import cycles, and each layer imports only those below it.

Every ``import`` statement that runs counts, wherever it stands (a function-level import is still a
dependency); imports under ``if TYPE_CHECKING:`` never run (annotations only) and do not.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "llamaguard_guardrails"
ROOT = "llamaguard_guardrails"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in _runtime_nodes_with(child))
            continue
        yield from _runtime_nodes_with(node)


def _runtime_nodes_with(node: ast.AST):
    yield node
    yield from _runtime_nodes(node)


@cache
def source_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                submodules = {f"{module}.{alias.name}" for alias in node.names} & files.keys()
                targets |= submodules
                if node.module or len(submodules) < len(node.names):  # names defined in ``module`` itself
                    targets.add(module)
        edges[name] = {t for t in targets if t in files and t != name}
    return edges


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    return source_graph()


def cycles() -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    edges, index, low, stack, on_stack, found = graph(), {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def imports_of(prefix: str) -> dict[str, set[str]]:
    return {m: deps for m, deps in graph().items() if m == prefix or m.startswith(prefix + ".")}


def test_the_graph_is_read():
    assert "llamaguard_guardrails.core.decision" in graph()["llamaguard_guardrails.guard"]
    assert "llamaguard_guardrails.loading" in graph()["llamaguard_guardrails.guard"]


def test_no_import_cycles():
    assert cycles() == []


@pytest.mark.parametrize("layer", ["core", "backends", "testing"])
def test_backends_core_and_testing_never_import_the_facade_or_the_loaders(layer):
    facade = {f"{ROOT}.guard", f"{ROOT}.loading"}
    wrong = {(m, d) for m, deps in imports_of(f"{ROOT}.{layer}").items() for d in deps & facade}
    if layer == "testing":  # its public namespace builds the scripted guard; its modules stay below the facade
        wrong -= {(f"{ROOT}.testing", d) for d in facade}
    assert wrong == set()


def test_the_core_imports_only_the_core():
    outside = {
        (m, d) for m, deps in imports_of(f"{ROOT}.core").items() for d in deps if not d.startswith(f"{ROOT}.core")
    }
    assert outside == set()


def test_production_code_never_imports_testing():
    users = {m for m, deps in graph().items() if any(d.startswith(f"{ROOT}.testing") for d in deps)}
    assert {m for m in users if not m.startswith(f"{ROOT}.testing")} == set()


def private_imports() -> set[tuple[str, str]]:
    """``(importer, name)`` for every private name a module takes from another module's namespace.

    A private module (``langchain/_steps.py``) is its package's own: importing it from inside that package
    is allowed, from anywhere else it is not.
    """
    found = set()
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.level or (node.module or "").startswith(ROOT)):
                continue
            base = package.split(".")
            source = ".".join(
                [*(base[: len(base) - node.level + 1] if node.level else []), *filter(None, [node.module])]
            )
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    if not (target in source_graph() and target.rpartition(".")[0] == package):
                        found.add((name, target))
                elif any(p.startswith("_") for p in source.split(".")) and source.rpartition(".")[0] != package:
                    found.add((name, source))
    return found


def test_no_private_name_is_imported_across_files():
    assert private_imports() == set()


@pytest.mark.parametrize("adapter", ["langchain", "llama_stack", "client"])
def test_framework_adapters_do_not_import_each_other_or_the_cli(adapter):
    adapters = ("langchain", "llama_stack", "client", "scale", "evaluation", "cli")
    others = [f"{ROOT}.{o}" for o in adapters if o != adapter]
    wrong = {
        (m, d)
        for m, deps in imports_of(f"{ROOT}.{adapter}").items()
        for d in deps
        if any(d == o or d.startswith(o + ".") for o in others)
    }
    assert wrong == set()
