"""``--filter`` expressions, turned into a ``qdrant_client.models.Filter``.

A small syntax rather than JSON, because filters are typed in a shell. Several
``--filter`` options are ANDed. See :data:`FILTER_HELP`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hybrid_retriever.collection import CONTENT_KEY, METADATA_KEY
from hybrid_retriever.errors import InvalidParameterError

if TYPE_CHECKING:
    from qdrant_client.http import models

FILTER_HELP = f"""\
filters (--filter, repeatable, all must hold):
  KEY=VALUE      KEY equals VALUE          --filter topic=cooking
  KEY!=VALUE     KEY does not equal VALUE  --filter lang!=de
  KEY=[A,B]      KEY is one of A, B (JSON) --filter 'topic=["cooking","health"]'
  KEY!=[A,B]     KEY is none of them
  KEY>N  KEY>=N  KEY<N  KEY<=N             --filter 'year>=2020'
  KEY is a metadata field ("{METADATA_KEY}." is added unless KEY starts with it;
  nested fields with dots: author.name). VALUE is read as JSON when it parses
  (42 is a number, true a boolean, "42" a string) and as plain text otherwise.
  Quote expressions with < or > for the shell.
"""

_EXPRESSION = re.compile(r"^\s*(?P<key>[^\s=!<>]+)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.*?)\s*$")
_RANGE_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def parse_filters(expressions: Sequence[str]) -> models.Filter | None:
    """The Filter that ANDs every expression; None when there are none."""
    if not expressions:
        return None
    from qdrant_client.http import models

    must: list[Any] = []
    must_not: list[Any] = []
    for expression in expressions:
        matched = _EXPRESSION.match(expression)
        if matched is None or not matched["value"]:
            raise InvalidParameterError(
                f"--filter {expression!r} is not KEY=VALUE, KEY!=VALUE or KEY>N (also >=, <, "
                "<=); see --help."
            )
        key, op, raw = _payload_key(matched["key"]), matched["op"], matched["value"]
        if op in _RANGE_OPS:
            bound = _number(raw, expression)
            must.append(
                models.FieldCondition(key=key, range=models.Range(**{_RANGE_OPS[op]: bound}))
            )
            continue
        value = _match_value(raw, expression)
        match: Any = (
            models.MatchAny(any=value)
            if isinstance(value, list)
            else models.MatchValue(value=value)
        )
        (must if op == "=" else must_not).append(models.FieldCondition(key=key, match=match))
    return models.Filter(must=must or None, must_not=must_not or None)


def _payload_key(key: str) -> str:
    """Documents are stored as {page_content, metadata}: metadata fields live under metadata."""
    if key == CONTENT_KEY or key.startswith((f"{METADATA_KEY}.", f"{METADATA_KEY}[")):
        return key
    return f"{METADATA_KEY}.{key}"


def _number(raw: str, expression: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterError(
            f"--filter {expression!r}: {raw!r} is not a number; <, <=, > and >= compare numbers."
        ) from None
    if not math.isfinite(value):
        raise InvalidParameterError(f"--filter {expression!r}: {raw!r} is not a finite number.")
    return value


def _match_value(raw: str, expression: str) -> str | int | bool | list[str] | list[int]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if isinstance(value, str | bool | int) and not isinstance(value, float):
        return value
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return [str(v) for v in value]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [int(v) for v in value]
    if isinstance(value, float):
        raise InvalidParameterError(
            f"--filter {expression!r}: equality on a fractional number is unreliable; use a "
            f"range instead, e.g. KEY>={raw} and KEY<={raw}."
        )
    raise InvalidParameterError(
        f"--filter {expression!r}: the value must be text, an integer, true/false, or a "
        'non-empty JSON list of all-text or all-integer values such as ["a","b"].'
    )
