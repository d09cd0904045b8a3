"""The ``bm25_encoder=`` argument: BM25 on for new collections, existing ones as written.

What each value means:

* unset (``"auto"``, the default): a new collection is created with BM25 (a default
  :class:`~hybrid_retriever.encoders.bm25.Bm25Encoder`); an existing one is used as it was
  written: with BM25 at the settings its model record holds, or without BM25 if it has
  no BM25 vector (``add_bm25.copy_with_bm25`` copies it into one that has);
* ``True``: BM25 required, with the settings chosen as for ``"auto"``; a collection
  without a BM25 vector is refused (``CollectionMismatchError``);
* a language (``"german"``) or a ``Bm25Encoder``: BM25 required, with exactly these
  settings (the model record refuses a collection written with others);
* ``False`` or ``None``: no BM25 branch.

Why the record's settings rather than the defaults: the default k1 moved from 0.9 to
1.2 with the BM25 study (``docs/bm25-study.md``), and every stored BM25 weight depends
on k1; a collection written at 0.9 must keep opening without its caller naming it.

``"auto"`` and ``True`` are *pending* until the retriever first needs its branches
(a search, a write): :func:`bm25_for_collection` then turns them into an encoder or None,
once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeGuard

from hybrid_retriever.collection import CollectionLayout
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.errors import CollectionMismatchError, InvalidParameterError
from hybrid_retriever.model_record import recorded_identity

AUTO: Literal["auto"] = "auto"
"""The default ``bm25_encoder``: BM25 for new collections, existing ones as written."""

Bm25Setting = Bm25Encoder | Literal["auto", True] | None
"""``bm25_encoder`` once checked: an encoder, pending (``"auto"`` or ``True``), or None."""

COPY_HINT = (
    "hybrid_retriever.add_bm25.copy_with_bm25(retriever, 'NEW_NAME') copies it into a "
    "new collection with a BM25 vector, without re-encoding anything else"
)


def as_bm25_setting(value: Any) -> Bm25Setting:
    """Check a ``bm25_encoder=`` value (see the module's docstring) and normalise it."""
    if value is None or value is False:
        return None
    if value is True or value == AUTO:
        return True if value is True else AUTO
    if isinstance(value, str):
        return Bm25Encoder(language=value)
    if isinstance(value, Bm25Encoder):
        return value
    raise InvalidParameterError(
        "bm25_encoder must be left unset (BM25 for new collections, existing ones as "
        "written), True (BM25 required), a language such as 'german', a "
        f"Bm25Encoder(k1=..., b=...), or False (no BM25), not {type(value).__name__}."
    )


def is_pending(setting: Bm25Setting) -> TypeGuard[Literal["auto", True]]:
    """Whether ``setting`` still waits for the collection to say what it becomes."""
    return setting is True or setting == AUTO


def bm25_for_collection(
    setting: Literal["auto", True],
    layout: CollectionLayout | None,
    record: Mapping[str, Any] | None,
    *,
    vector_name: str,
    where: str,
) -> Bm25Encoder | None:
    """What a pending ``setting`` becomes for a collection with ``layout`` (None: it is
    about to be created) and model ``record``.

    None only for ``"auto"`` and an existing collection without the BM25 vector. Where
    BM25 is required but the collection lacks the vector, the default encoder: the
    layout check then refuses the collection, naming the fix.
    """
    if layout is None:
        return Bm25Encoder()
    if vector_name not in layout.sparse:
        return None if setting == AUTO else Bm25Encoder()
    identity = recorded_identity(record, vector_name, where=where)
    if identity is None:  # unrecorded: the model check warns
        return Bm25Encoder()
    return _encoder_of(identity, where=where)


def _encoder_of(identity: Mapping[str, Any], *, where: str) -> Bm25Encoder:
    """The encoder that writes what ``identity`` describes. Settings this version cannot
    rebuild give the default encoder, and the model check then names the difference."""
    if identity.get("stopwords", "default") != "default":
        raise CollectionMismatchError(
            f"The BM25 vector of {where} was written with stopwords of its own, which its "
            "record keeps only as a hash. Pass the encoder it was written with, "
            "bm25_encoder=Bm25Encoder(language=..., k1=..., b=..., avg_len=..., "
            "stopwords=[...]) (its record names the other settings: "
            f"{_settings(identity)}), or bm25_encoder=False to search only its dense and "
            "SPLADE branches."
        )
    try:
        return Bm25Encoder(
            language=identity["language"],
            k1=identity["k1"],
            b=identity["b"],
            avg_len=identity["avg_len"],
        )
    except (KeyError, InvalidParameterError):
        return Bm25Encoder()


def _settings(identity: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} {identity.get(key)!r}" for key in ("language", "k1", "b", "avg_len"))
