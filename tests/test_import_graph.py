"""The package's import graph has no circle.

Every module under ``src/rsvg`` is read with :mod:`ast` (nothing is imported) and its module-level ``rsvg``
imports become edges: ``import rsvg.x``, ``from rsvg.x import y``, relative ``from . import y``, and
``from rsvg.pkg import name`` where ``name`` is a submodule counts as importing that submodule. Imports under
``if TYPE_CHECKING:`` count too: the types that modules share live in modules of their own at the bottom of the
graph (e.g. :mod:`rsvg.results`, :mod:`rsvg.models.outputs`), so no circle is needed even for annotations.
Imports inside functions are not edges: they run later, when the function is called.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "rsvg"

Graph = dict[str, set[str]]


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file under ``package_dir`` (a package's ``__init__.py`` is the
    package itself)."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported: everywhere but inside functions (so under
    ``if``, ``try`` and class bodies too, ``if TYPE_CHECKING:`` included)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` names (resolving its dots against ``module``)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(modules: Mapping[str, Path]) -> Graph:
    """Module → the package's modules it imports at module level (see the module docstring for what counts)."""
    graph: Graph = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in module_level_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            source = _absolute(node, module, is_package)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One circle of the graph as ``[a, b, ..., a]``, or ``None`` when it has none (depth-first, no recursion)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path = [start]
        on_path = {start}
        pending = [iter(sorted(graph[start]))]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                pending.append(iter(sorted(graph.get(nxt, ()))))
    return None


@cache
def package_graph() -> Graph:
    """The import graph of ``src/rsvg``, read once per test run."""
    return import_graph(module_files(PACKAGE_DIR))


def test_the_package_imports_without_a_circle() -> None:
    graph = package_graph()
    assert "rsvg.inference" in graph and len(graph) > 100
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_result_types_sit_below_their_readers() -> None:
    graph = package_graph()
    assert "rsvg.results" in graph["rsvg.inference"] and "rsvg.results" in graph["rsvg.geo.scene"]
    assert "rsvg.models.outputs" in graph["rsvg.models.stages.base"]
    assert graph["rsvg.models.outputs"] == set()


def write_package(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return module_files(root / "pkg")


def test_what_counts_as_an_import(tmp_path: Path) -> None:
    modules = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub import tool\n",
            "pkg/sub/__init__.py": "from . import leaf\nfrom .leaf import VALUE\n",
            "pkg/sub/leaf.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.types import T\n",
            "pkg/sub/tool.py": "import pkg.types as types\n\ndef later():\n    import pkg\n",
            "pkg/types.py": "class T:\n    from pkg.sub import leaf\n",
        },
    )
    assert import_graph(modules) == {
        "pkg": {"pkg.sub.tool"},  # a submodule named by a from-import is the edge, not its package
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.types"},  # under TYPE_CHECKING
        "pkg.sub.tool": {"pkg.types"},  # the import inside later() is no edge
        "pkg.types": {"pkg.sub.leaf"},  # a class body runs at import
    }


def test_a_circle_is_found_and_named() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a2", "b"}, "a2": set(), "b": {"b"}}) == ["b", "b"]
