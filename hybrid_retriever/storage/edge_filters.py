"""Translate qdrant-client filters into Qdrant Edge filters.

Users write one filter type, ``qdrant_client.models.Filter``, whatever the engine,
so that switching from embedded Edge to a server changes no query code. This
module maps the conditions both engines share; anything else is refused with a
message that names it, never silently dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hybrid_retriever.errors import InvalidParameterError

if TYPE_CHECKING:
    from qdrant_client.http import models


def to_edge_filter(query_filter: models.Filter | None) -> Any:
    """The Edge ``Filter`` equivalent to ``query_filter`` (None stays None)."""
    if query_filter is None:
        return None
    import qdrant_edge as edge

    min_should = None
    if query_filter.min_should is not None:
        min_should = edge.MinShould(
            conditions=[_condition(c) for c in query_filter.min_should.conditions],
            min_count=query_filter.min_should.min_count,
        )
    return edge.Filter(
        must=_conditions(query_filter.must),
        should=_conditions(query_filter.should),
        must_not=_conditions(query_filter.must_not),
        min_should=min_should,
    )


def _conditions(value: Any) -> list[Any] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [_condition(item) for item in items]


def _condition(condition: Any) -> Any:
    import qdrant_edge as edge
    from qdrant_client.http import models

    if isinstance(condition, models.Filter):
        return to_edge_filter(condition)
    if isinstance(condition, models.FieldCondition):
        return _field_condition(condition)
    if isinstance(condition, models.IsEmptyCondition):
        return edge.IsEmptyCondition(condition.is_empty.key)
    if isinstance(condition, models.IsNullCondition):
        return edge.IsNullCondition(condition.is_null.key)
    if isinstance(condition, models.HasIdCondition):
        return edge.HasIdCondition({str(i) for i in condition.has_id})
    if isinstance(condition, models.HasVectorCondition):
        return edge.HasVectorCondition(condition.has_vector)
    if isinstance(condition, models.NestedCondition):
        return edge.NestedCondition(condition.nested.key, to_edge_filter(condition.nested.filter))
    raise _unsupported(type(condition).__name__)


def _field_condition(condition: models.FieldCondition) -> Any:
    import qdrant_edge as edge
    from qdrant_client.http import models

    kwargs: dict[str, Any] = {}
    match = condition.match
    if match is not None:
        if isinstance(match, models.MatchValue):
            if isinstance(match.value, bool):
                # Edge converts True to the integer 1 and would match the wrong points.
                raise InvalidParameterError(
                    f"Qdrant Edge cannot match the boolean {match.value} on "
                    f"{condition.key!r} (it compares it as the integer {int(match.value)}). "
                    "Store the flag as a string or an integer and match that."
                )
            kwargs["match"] = edge.MatchValue(match.value)
        elif isinstance(match, models.MatchAny):
            kwargs["match"] = edge.MatchAny(list(match.any))  # type: ignore[arg-type]
        elif isinstance(match, models.MatchExcept):
            kwargs["match"] = edge.MatchExcept(list(match.except_))  # type: ignore[arg-type]
        elif isinstance(match, models.MatchText):
            kwargs["match"] = edge.MatchText(match.text)
        elif isinstance(match, models.MatchTextAny):
            kwargs["match"] = edge.MatchTextAny(match.text_any)
        elif isinstance(match, models.MatchPhrase):
            kwargs["match"] = edge.MatchPhrase(match.phrase)
        else:
            raise _unsupported(type(match).__name__)
    if condition.range is not None:
        bounds = {
            name: getattr(condition.range, name)
            for name in ("gte", "gt", "lte", "lt")
            if getattr(condition.range, name) is not None
        }
        if isinstance(condition.range, models.DatetimeRange):
            kwargs["range"] = edge.RangeDateTime(
                **{name: _iso(value) for name, value in bounds.items()}
            )
        else:
            kwargs["range"] = edge.RangeFloat(**bounds)
    if condition.values_count is not None:
        count = condition.values_count
        kwargs["values_count"] = edge.ValuesCount(
            lt=count.lt, gt=count.gt, gte=count.gte, lte=count.lte
        )
    if condition.is_empty is not None:
        kwargs["is_empty"] = condition.is_empty
    if condition.is_null is not None:
        kwargs["is_null"] = condition.is_null
    for geo in ("geo_bounding_box", "geo_radius", "geo_polygon"):
        if getattr(condition, geo) is not None:
            raise _unsupported(geo)
    return edge.FieldCondition(condition.key, **kwargs)


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _unsupported(what: str) -> InvalidParameterError:
    return InvalidParameterError(
        f"The filter uses {what}, which the Qdrant Edge backend does not translate. Use "
        "match/range/values_count/is_empty/is_null/has_id/nested conditions, or a Qdrant "
        "server (url=) or engine='qdrant-client'."
    )
