"""``evaluation`` and ``tuning`` share what they both need (the branch lists, the hit ids,
ranx scoring) through modules below them, and neither imports the other (they once did:
evaluation -> tuning for ``hit_id`` and ``search_branches``, tuning -> evaluation for
``score_queries``)."""

from __future__ import annotations

import ast
from pathlib import Path

import hybrid_retriever

PACKAGE = "hybrid_retriever"
WATCHED = ("evaluation", "tuning", "branch_lists", "scoring", "cli.evaluate", "cli.tune")


def import_edges() -> dict[str, set[str]]:
    """Module (dotted, below the package) -> the package's modules it imports, at module
    level or inside functions; ``from hybrid_retriever.x import y`` counts as x."""
    folder = Path(hybrid_retriever.__file__).parent
    modules = {
        ".".join(path.relative_to(folder).with_suffix("").parts).removesuffix(".__init__")
        for path in folder.rglob("*.py")
    }
    edges: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        name = ".".join(path.relative_to(folder).with_suffix("").parts).removesuffix(".__init__")
        targets = edges.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for full in names:
                if full.startswith(f"{PACKAGE}."):
                    target = full.removeprefix(f"{PACKAGE}.")
                    if target in modules and target != name:
                        targets.add(target)
    return edges


def cycle_through(edges: dict[str, set[str]], start: str) -> list[str] | None:
    """A chain of imports from ``start`` back to it, or None."""
    seen: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        for target in sorted(edges.get(module, ())):
            if target == start:
                return [*path, target]
            if target not in seen:
                seen.add(target)
                found = visit(target, [*path, target])
                if found:
                    return found
        return None

    return visit(start, [start])


def test_evaluation_and_tuning_do_not_import_each_other() -> None:
    edges = import_edges()
    assert "tuning" not in edges["evaluation"]
    assert "evaluation" not in edges["tuning"]


def test_no_import_cycle_runs_through_evaluation_or_tuning() -> None:
    edges = import_edges()
    for module in WATCHED:
        assert module in edges, module
        cycle = cycle_through(edges, module)
        assert cycle is None, " -> ".join(cycle or ())


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle_through(edges, "a") == ["a", "b", "c", "a"]
    assert cycle_through(edges, "d") is None
