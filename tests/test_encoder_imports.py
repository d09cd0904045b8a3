"""The modules of ``hybrid_retriever.encoders`` import each other as a tree: the ONNX
export does not reach up into an encoder (it once did: onnx_export -> splade ->
onnx_model -> onnx_export)."""

from __future__ import annotations

import ast
from pathlib import Path

import hybrid_retriever.encoders

PACKAGE = "hybrid_retriever.encoders."


def import_edges() -> dict[str, set[str]]:
    """Module -> the sibling modules it imports, at module level or inside functions."""
    folder = Path(hybrid_retriever.encoders.__file__).parent
    edges: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        targets = edges.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            targets.update(n.removeprefix(PACKAGE) for n in names if n.startswith(PACKAGE))
    return edges


def test_the_encoders_modules_import_each_other_without_a_cycle() -> None:
    edges = import_edges()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, (*path, module))
        done.add(module)

    for module in edges:
        visit(module, ())
    assert "splade" not in edges["onnx_export"]
