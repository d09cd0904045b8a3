"""The package's layers import downwards only: fusion (the ranking maths) knows nothing of
the query options, the retriever or the VectorStore above it, and chunking nothing of the
source readers. ``fusion/config.py`` once took ``DEFAULT_PREFETCH_K`` and ``check_k`` from
``search_options``; they live in ``fusion/depth.py`` now."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hybrid_retriever

PACKAGE_DIR = Path(hybrid_retriever.__file__).parent

ABOVE_FUSION = (
    "hybrid_retriever.search_options",
    "hybrid_retriever.retriever",
    "hybrid_retriever.vectorstore",
)
ABOVE_CHUNKING = ("hybrid_retriever.sources",)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions, ``from x import
    y`` counted as both ``x`` and ``x.y`` (y may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _reaches(modules: set[str], forbidden: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(m == f or m.startswith(f"{f}.") for f in forbidden)}


@pytest.mark.parametrize(
    "path", sorted((PACKAGE_DIR / "fusion").glob("*.py")), ids=lambda p: p.name
)
def test_no_fusion_module_imports_the_query_options_retriever_or_vectorstore(path: Path) -> None:
    assert not _reaches(imported_modules(path), ABOVE_FUSION)


def test_chunking_does_not_import_the_source_readers() -> None:
    assert not _reaches(imported_modules(PACKAGE_DIR / "chunking.py"), ABOVE_CHUNKING)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports (the package's own
    ``__init__``, a facade that imports everything, left out)."""
    files = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    files.pop("hybrid_retriever")
    return {name: {m for m in imported_modules(path) if m in files} for name, path in files.items()}


def _closure(graph: dict[str, set[str]], start: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def test_fusion_and_chunking_reach_nothing_above_them_through_other_modules() -> None:
    graph = _import_graph()
    fusion = {m for m in graph if m.startswith("hybrid_retriever.fusion")}
    assert len(fusion) > 5
    assert not _reaches(_closure(graph, fusion), ABOVE_FUSION)
    assert not _reaches(_closure(graph, {"hybrid_retriever.chunking"}), ABOVE_CHUNKING)
