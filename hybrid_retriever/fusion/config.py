"""A fusion configuration: the method, its weights and parameters, as one value.

The retriever's defaults are :data:`DEFAULT_FUSION_CONFIG`; ``hybrid-retriever tune``
saves the config it chose as JSON, which ``HybridRetriever(fusion_config=...)`` loads.
The fusion study, ``eval`` and the retriever all fuse through :meth:`FusionConfig.fuse`
or the same :func:`~hybrid_retriever.fusion.methods.fuse` it calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.branches import ALL_BRANCHES, TWO_BRANCHES
from hybrid_retriever.fusion.depth import DEFAULT_PREFETCH_K, check_k
from hybrid_retriever.fusion.methods import (
    DEFAULT_FUSION,
    FusionMethod,
    check_fusion,
    default_weights,
    fuse,
)
from hybrid_retriever.fusion.query_length import BASE, CEILING, FLOOR, PIVOT_WORDS, SLOPE
from hybrid_retriever.fusion.rrf import (
    DEFAULT_RRF_K,
    BranchHit,
    FusedHit,
    check_rrf_k,
    check_weights,
)

CONFIG_FORMAT = "hybrid-retriever/fusion-config"
CONFIG_VERSION = 1


@dataclass(frozen=True)
class FusionConfig:
    """A fusion method and its parameters: the default, or what ``tune`` chose; saved as JSON.

    ``retriever_kwargs()`` are constructor arguments of ``HybridRetriever`` and
    ``search_options()`` the same as per-call options of ``invoke``.
    """

    method: FusionMethod = DEFAULT_FUSION
    weights: dict[str, float] | None = None
    """None: the method's default (:func:`~hybrid_retriever.fusion.methods.default_weights`),
    which for the default method depends on each query's length."""
    rrf_k: float = DEFAULT_RRF_K
    prefetch_k: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    """How it was chosen (dataset, split, scores); informational, never read back as options."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", check_fusion(self.method))
        if self.weights is not None:
            object.__setattr__(self, "weights", _checked_weights(self.weights))
        check_rrf_k(self.rrf_k)
        if self.prefetch_k is not None:
            check_k(self.prefetch_k, "prefetch_k")

    def __hash__(self) -> int:  # the weights dict is not hashable; its items are
        weights = tuple(sorted(self.weights.items())) if self.weights is not None else None
        return hash((self.method, weights, self.rrf_k, self.prefetch_k))

    def search_options(self) -> dict[str, Any]:
        """Per-call options: ``retriever.invoke(query, **config.search_options())``."""
        options: dict[str, Any] = {"fusion": self.method, "rrf_k": self.rrf_k}
        if self.weights is not None:
            options["weights"] = dict(self.weights)
        if self.prefetch_k is not None:
            options["prefetch_k"] = self.prefetch_k
        return options

    def retriever_kwargs(self) -> dict[str, Any]:
        """Constructor arguments: ``HybridRetriever(**config.retriever_kwargs(), ...)``."""
        return self.search_options()

    def describe(self) -> str:
        """One line, e.g. ``convex weights={'dense': 0.6, 'sparse': 0.4} prefetch_k=50``."""
        parts = [self.method.value]
        if self.weights is not None:
            shown = ", ".join(f"'{b}': {w:g}" for b, w in self.weights.items())
            parts.append(f"weights={{{shown}}}")
        elif self.method is DEFAULT_FUSION:
            parts.append(
                f"weights=by query length (dense {BASE:g} at {PIVOT_WORDS} words, "
                f"+{SLOPE:g} per doubling, {FLOOR:g}-{CEILING:g})"
            )
        if self.method is FusionMethod.RRF:
            parts.append(f"rrf_k={self.rrf_k:g}")
        parts.append(f"prefetch_k={self.prefetch_k or DEFAULT_PREFETCH_K}")
        return " ".join(parts)

    def fuse(
        self,
        rankings: Mapping[str, Sequence[BranchHit]],
        *,
        query: str | None = None,
        limit: int | None = None,
    ) -> list[FusedHit]:
        """Fuse one query's branch lists as a retriever with this config does: each list
        cut to ``prefetch_k``, a branch of weight 0 left unsearched, then :func:`fuse`.

        ``query`` is the query's text; it is needed when the weights are the default
        method's, which depend on it. The branches are the keys of ``rankings`` (a branch
        searched with no hits is an empty list); weights for other branches are ignored.
        """
        depth = self.prefetch_k or DEFAULT_PREFETCH_K
        weights = self.weights
        if weights is None and self.method is DEFAULT_FUSION:
            if query is None:
                raise InvalidParameterError(
                    f"The default {self.method.value} weights depend on the query's length; "
                    "pass query=<the query text> to fuse(), or set weights."
                )
            weights = default_weights(self.method, query, branches=tuple(rankings))
        weights = {b: (weights or {}).get(b, 1.0) for b in rankings}
        searched = {
            b: (hits[:depth] if weights.get(b, 1.0) > 0 else []) for b, hits in rankings.items()
        }
        return fuse(searched, method=self.method, weights=weights, rrf_k=self.rrf_k, limit=limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CONFIG_FORMAT,
            "version": CONFIG_VERSION,
            "fusion": self.method.value,
            "weights": self.weights,
            "rrf_k": self.rrf_k,
            "prefetch_k": self.prefetch_k,
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> Path:
        """Write the config as JSON (parent folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def from_json(cls, data: Any, *, source: str = "config") -> FusionConfig:
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            raise InvalidParameterError(
                f'{source} is not a fusion config (no "format": "{CONFIG_FORMAT}"); '
                "make one with 'hybrid-retriever tune' or FusionConfig(...).save()."
            )
        if data.get("version") != CONFIG_VERSION:
            raise InvalidParameterError(
                f"{source} has fusion config version {data.get('version')!r}; this version "
                f"of hybrid-retriever reads version {CONFIG_VERSION}. Run 'hybrid-retriever "
                "tune' again."
            )
        try:
            return cls(
                method=data.get("fusion", DEFAULT_FUSION.value),
                weights=data.get("weights"),
                rrf_k=data.get("rrf_k", DEFAULT_RRF_K),
                prefetch_k=data.get("prefetch_k"),
                provenance=dict(data.get("provenance") or {}),
            )
        except InvalidParameterError as error:
            raise InvalidParameterError(f"{source}: {error}") from None

    @classmethod
    def load(cls, path: str | Path) -> FusionConfig:
        """Read a config that :meth:`save` wrote."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidParameterError(
                f"{path} does not exist; create it with "
                f"'hybrid-retriever tune DATASET --out {path}'."
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidParameterError(f"{path} is not valid JSON ({error}).") from None
        return cls.from_json(data, source=str(path))


def _checked_weights(weights: Any) -> dict[str, float]:
    """Weights over any of the branches: dense and SPLADE always (1 where not named, as
    before BM25 existed), BM25 only when named, so a two-branch config stays two-branch."""
    resolved = check_weights(weights, ALL_BRANCHES)
    kept = {b: w for b, w in resolved.items() if b in TWO_BRANCHES or b in weights}
    return check_weights(kept, kept)  # at least one of the kept ones above 0


DEFAULT_FUSION_CONFIG = FusionConfig()
"""What a retriever does when the caller sets no fusion option."""
