"""Validation of what a search is asked: the query text and the per-call options.

Kept apart from the retriever so that the query path reads top to bottom, and so
that every bad value gets one clear message in one place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hybrid_retriever.advice import advise
from hybrid_retriever.collection import CONTENT_KEY, METADATA_KEY
from hybrid_retriever.errors import InvalidParameterError, InvalidQueryError
from hybrid_retriever.fusion.branches import ALL_BRANCHES, TWO_BRANCHES
from hybrid_retriever.fusion.branches import BM25 as BM25  # re-exported
from hybrid_retriever.fusion.branches import DENSE as DENSE  # re-exported
from hybrid_retriever.fusion.branches import SPARSE as SPARSE  # re-exported
from hybrid_retriever.fusion.depth import DEFAULT_PREFETCH_K as DEFAULT_PREFETCH_K  # re-exported
from hybrid_retriever.fusion.depth import MAX_K as MAX_K  # re-exported
from hybrid_retriever.fusion.depth import check_k as check_k  # re-exported
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod, check_fusion
from hybrid_retriever.fusion.rrf import check_rrf_k, check_weights
from hybrid_retriever.grouping import check_group_by
from hybrid_retriever.mmr import DEFAULT_FETCH_K, DEFAULT_LAMBDA_MULT, check_lambda_mult
from hybrid_retriever.relevance import check_score_threshold
from hybrid_retriever.storage.base import Routing

BRANCHES = TWO_BRANCHES
"""The branches every retriever has; BM25 joins them unless its collection has none or
``bm25_encoder=False``."""

MAX_QUERY_CHARS = 100_000
"""Models read at most a few hundred tokens; a longer query is almost surely a mistake."""

PER_CALL_OPTIONS = frozenset(
    {
        "k",
        "prefetch_k",
        "fusion",
        "rrf_k",
        "weights",
        "branches",
        "filter",
        "shard_key",
        "read_consistency",
        "offset",
        "group_by",
        "search_type",
        "fetch_k",
        "lambda_mult",
        "score_threshold",
    }
)


class SearchType(str, Enum):
    """What a search returns, LangChain's ``search_type``: the fused ranking, or a
    diverse selection from its top ``fetch_k`` (maximal marginal relevance)."""

    SIMILARITY = "similarity"
    MMR = "mmr"


@dataclass(frozen=True, slots=True)
class SearchOptions:
    k: int
    prefetch_k: int
    fusion: FusionMethod
    rrf_k: float
    weights: dict[str, float] | None
    """None: the default method's weights, set per query from its text (``fusion.methods``)."""
    filter: Any
    routing: Routing
    branches: tuple[str, ...] = TWO_BRANCHES
    """The branches this search fuses, in :data:`ALL_BRANCHES` order."""
    offset: int = 0
    """Results of the ranking skipped before the k returned (paging)."""
    group_by: str | None = None
    """Payload path whose value names a hit's source; one hit per source. None: off."""
    search_type: SearchType = SearchType.SIMILARITY
    fetch_k: int = DEFAULT_FETCH_K
    """MMR: the candidates (of the fused ranking) it chooses from."""
    lambda_mult: float = DEFAULT_LAMBDA_MULT
    """MMR: 1 relevance only, 0 diversity only."""
    score_threshold: float | None = None
    """Results whose ``_relevance`` is below it are dropped; None: none are."""

    def searches(self, branch: str) -> bool:
        """Whether ``branch`` is searched at all: not when unselected or its weight is 0."""
        return branch in self.branches and (self.weights is None or self.weights[branch] > 0)


def check_query(query: Any) -> str:
    """The query text, or ``InvalidQueryError`` saying why it cannot be searched."""
    if not isinstance(query, str):
        raise InvalidQueryError(
            f"The query must be a str, not {type(query).__name__}"
            + (" (decode bytes with .decode('utf-8') first)." if isinstance(query, bytes) else ".")
        )
    if not query.strip():
        raise InvalidQueryError("The query is empty or whitespace only; pass some text.")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQueryError(
            f"The query has {len(query):,} characters, more than {MAX_QUERY_CHARS:,}; the "
            "encoders only read the first few hundred tokens. Pass a shorter query."
        )
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQueryError(
            f"The query contains an invalid character at position {exc.start} (a lone "
            f"surrogate, {query[exc.start]!r}); it is not valid Unicode text. Decode the "
            "input with errors='replace' first."
        ) from None
    return query


def check_filter(query_filter: Any) -> Any:
    if query_filter is None:
        return None
    from qdrant_client.http.models import Filter

    if not isinstance(query_filter, Filter):
        raise InvalidParameterError(
            f"filter must be a qdrant_client.models.Filter, not {type(query_filter).__name__}. "
            "Example: models.Filter(must=[models.FieldCondition(key='metadata.topic', "
            "match=models.MatchValue(value='biology'))])."
        )
    for key in _filter_keys(query_filter):
        if key != CONTENT_KEY and not key.startswith((f"{METADATA_KEY}.", f"{METADATA_KEY}[")):
            raise InvalidParameterError(
                f"The filter uses the key {key!r}, which is not in the stored payload: documents "
                f"are stored as {{'{CONTENT_KEY}': ..., '{METADATA_KEY}': {{...}}}}, so a metadata "
                f"field is '{METADATA_KEY}.{key}'."
            )
    return query_filter


def _filter_keys(node: Any) -> Iterator[str]:
    """Every payload key a qdrant-client filter refers to, nested filters included."""
    from qdrant_client.http import models

    if isinstance(node, list):
        for item in node:
            yield from _filter_keys(item)
    elif isinstance(node, models.Filter):
        for part in (node.must, node.should, node.must_not):
            if part is not None:
                yield from _filter_keys(part)
        if node.min_should is not None:
            yield from _filter_keys(node.min_should.conditions)
    elif isinstance(node, models.FieldCondition):
        yield node.key
    elif isinstance(node, models.IsEmptyCondition):
        yield node.is_empty.key
    elif isinstance(node, models.IsNullCondition):
        yield node.is_null.key
    elif isinstance(node, models.NestedCondition):
        # Keys inside a nested filter are relative to the nested array.
        yield node.nested.key


def resolve_search_options(
    *,
    k: Any,
    prefetch_k: Any,
    fusion: Any,
    rrf_k: Any,
    weights: Any,
    query_filter: Any,
    branches: Any = None,
    available: tuple[str, ...] = TWO_BRANCHES,
    overrides: Mapping[str, Any] | None = None,
    offset: Any = 0,
    group_by: Any = None,
    search_type: Any = SearchType.SIMILARITY,
    fetch_k: Any = None,
    lambda_mult: Any = DEFAULT_LAMBDA_MULT,
    score_threshold: Any = None,
) -> SearchOptions:
    """Merge per-call ``overrides`` over the retriever's settings, and validate the result.

    ``available`` are the branches the retriever has encoders for; ``branches`` (None:
    all of them) the ones a search fuses. Each branch is searched deep enough for what
    is returned: ``offset + k`` results, or MMR's ``fetch_k`` candidates."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - PER_CALL_OPTIONS)
    if unknown:
        raise InvalidParameterError(
            f"Unknown search options {unknown}; a call accepts {sorted(PER_CALL_OPTIONS)}."
        )
    k = check_k(overrides.get("k", k))
    offset = check_offset(overrides.get("offset", offset), k)
    kind = check_search_type(overrides.get("search_type", search_type))
    mmr = kind is SearchType.MMR
    fetch_k = check_fetch_k(overrides.get("fetch_k", fetch_k), offset + k if mmr else 1)
    needed = max(offset + k, fetch_k) if mmr else offset + k
    prefetch_k = overrides.get("prefetch_k", prefetch_k)
    if prefetch_k is None:
        prefetch_k = max(DEFAULT_PREFETCH_K, needed)
    else:
        check_k(prefetch_k, "prefetch_k")
        if prefetch_k < needed:
            wanted = f"k={k}" if needed == k else f"{needed} (offset + k, or MMR's fetch_k)"
            raise InvalidParameterError(
                f"prefetch_k={prefetch_k} is below {wanted}; each branch must return at least "
                "as many candidates as are returned. Raise prefetch_k or leave it unset."
            )
    rrf_k = overrides.get("rrf_k", rrf_k)
    check_rrf_k(rrf_k)
    method = check_fusion(overrides.get("fusion", fusion))
    selected = check_branches(overrides.get("branches", branches), available)
    weights = overrides.get("weights", weights)
    if weights is not None or method is not DEFAULT_FUSION:
        weights = check_weights(weights, selected)  # None: equal
    return SearchOptions(
        k=k,
        prefetch_k=prefetch_k,
        fusion=method,
        rrf_k=rrf_k,
        weights=weights,
        filter=check_filter(overrides.get("filter", query_filter)),
        routing=Routing(
            shard_key=overrides.get("shard_key"),
            read_consistency=check_read_consistency(overrides.get("read_consistency")),
        ),
        branches=selected,
        offset=offset,
        group_by=check_group_by(overrides.get("group_by", group_by)),
        search_type=kind,
        fetch_k=fetch_k,
        lambda_mult=check_lambda_mult(overrides.get("lambda_mult", lambda_mult)),
        score_threshold=check_score_threshold(overrides.get("score_threshold", score_threshold)),
    )


def check_offset(offset: Any, k: int) -> int:
    """Results skipped before the k returned: ``invoke(q, k=4, offset=8)`` is the third page."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidParameterError(
            f"offset must be an integer >= 0 (results skipped before the k returned), got "
            f"{offset!r}."
        )
    if offset + k > MAX_K:
        raise InvalidParameterError(
            f"offset + k = {offset + k:,} is too large (at most {MAX_K:,}); to read a whole "
            "collection, scroll through it with qdrant-client instead."
        )
    return offset


def check_search_type(value: Any) -> SearchType:
    try:
        return SearchType(value)
    except ValueError:
        raise InvalidParameterError(
            f"search_type={value!r} is not one of {[t.value for t in SearchType]}: 'similarity' "
            "returns the fused ranking, 'mmr' a diverse selection of its top fetch_k."
        ) from None


def check_fetch_k(fetch_k: Any, returned: int) -> int:
    """MMR's candidates; None: LangChain's default (20), or ``offset + k`` if more."""
    if fetch_k is None:
        return max(DEFAULT_FETCH_K, returned)
    check_k(fetch_k, "fetch_k")
    if fetch_k < returned:
        raise InvalidParameterError(
            f"fetch_k={fetch_k} is below the {returned} results asked for (offset + k); MMR "
            "picks them among fetch_k candidates. Raise fetch_k or leave it unset."
        )
    return int(fetch_k)


def check_branches(branches: Any, available: tuple[str, ...]) -> tuple[str, ...]:
    """The branches to search, in :data:`ALL_BRANCHES` order; None: all ``available``."""
    if branches is None:
        return available
    if isinstance(branches, str) or not isinstance(branches, tuple | list | set | frozenset):
        raise InvalidParameterError(
            f"branches must be a list of branch names, such as {list(available)}, "
            f"not {type(branches).__name__}."
        )
    unknown = sorted(str(b) for b in set(branches) - set(ALL_BRANCHES))
    if unknown:
        raise InvalidParameterError(
            f"branches name unknown branches {unknown}; the branches are {list(ALL_BRANCHES)}."
        )
    if not branches:
        raise InvalidParameterError(f"branches is empty; name one or more of {list(available)}.")
    if BM25 in branches and BM25 not in available:
        raise InvalidParameterError(
            advise(
                python="branches names 'bm25', but this retriever has no BM25 branch: its "
                "collection was written without a BM25 vector, or it was opened with "
                "bm25_encoder=False. Leave 'bm25' out; or copy the collection into one with "
                "a BM25 vector (hybrid_retriever.add_bm25.copy_with_bm25) and search that.",
                cli="--branches names bm25, but the collection has no BM25 branch: it was "
                "indexed with --no-bm25 or before BM25 was a default. Leave bm25 out, or "
                "index the source again into a new --collection to search it with BM25.",
            )
        )
    return tuple(b for b in ALL_BRANCHES if b in branches)


def check_read_consistency(value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and value in {"majority", "quorum", "all"}:
        return value
    raise InvalidParameterError(
        f"read_consistency must be a number of replicas >= 1 or one of 'majority', 'quorum', "
        f"'all'; got {value!r}."
    )
