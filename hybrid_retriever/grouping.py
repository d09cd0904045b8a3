"""One result per source: the best-ranked hit of each group, in ranking order.

A long document is indexed as chunks (:mod:`hybrid_retriever.chunking`), so the top k
of a search can be three chunks of one document; RAG context wants k distinct
sources. Grouping is done client-side after fusion, on the fused ranking, so it
works the same on every engine and keeps the fused order: a source ranks where its
best chunk does (as the evaluation already counts a chunked document).

Groups are named by a payload path (default :data:`DEFAULT_GROUP_BY`, the key chunking
writes); a point without that key is a group of its own, so a collection of whole
documents is left as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from hybrid_retriever.chunking import SOURCE_ID_KEY
from hybrid_retriever.collection import METADATA_KEY
from hybrid_retriever.errors import InvalidParameterError

DEFAULT_GROUP_BY = f"{METADATA_KEY}.{SOURCE_ID_KEY}"
"""Chunks of one document share its id under this path; whole documents have none."""

Hit = TypeVar("Hit")


def first_per_group(
    hits: Sequence[Hit], group_of: Callable[[Hit], Hashable], limit: int
) -> list[Hit]:
    """The first (best-ranked) hit of each group, in the order of ``hits``, at most
    ``limit`` of them."""
    seen: set[Hashable] = set()
    kept: list[Hit] = []
    for hit in hits:
        if len(kept) >= limit:
            break
        group = group_of(hit)
        if group not in seen:
            seen.add(group)
            kept.append(hit)
    return kept


def group_value(point_id: str, payload: Mapping[str, Any], path: str) -> Hashable:
    """The group of a point: the JSON of its value at ``path`` (dotted), or the point
    itself (a group of one) where the payload has no value there."""
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node or node[part] is None:
            return ("point", point_id)
        node = node[part]
    return ("value", json.dumps(node, sort_keys=True, ensure_ascii=False))


def check_group_by(value: Any) -> str | None:
    """The payload path to group by, or None for no grouping. True: the default
    (:data:`DEFAULT_GROUP_BY`); None or False: off."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_GROUP_BY
    if not isinstance(value, str) or not value.startswith(f"{METADATA_KEY}."):
        raise InvalidParameterError(
            f"group_by must be a metadata field such as '{DEFAULT_GROUP_BY}' or "
            f"'{METADATA_KEY}.author' (documents are stored as {{'{METADATA_KEY}': {{...}}}}), "
            f"True for the default, or None to return every chunk; got {value!r}."
        )
    if any(not part for part in value.split(".")):
        raise InvalidParameterError(
            f"group_by={value!r} has an empty part; write the path as '{METADATA_KEY}.field'."
        )
    return value
