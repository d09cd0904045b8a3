"""Tenant-bound retrievers: one collection shared by many tenants, each retriever confined
to one of them.

Qdrant recommends multi-tenancy as one collection partitioned by a payload key, indexed
with ``is_tenant``. ``HybridRetriever(tenant="acme")`` binds a retriever to the value
``"acme"`` of the metadata key ``tenant_key`` (default ``"tenant"``, stored in the payload
at ``metadata.tenant``, where filters and readers of the metadata see it). Whatever
filter or ids the caller passes, the retriever never returns, fetches, counts, overwrites
or deletes a point of another tenant:

* **search**: the tenant condition is a ``must`` around the caller's filter,
  ``Filter(must=[tenant, caller_filter])``; nothing inside the caller's filter (``should``,
  ``must_not``, ``min_should``, nesting) can widen it;
* **writes**: every document gets ``metadata[tenant_key] = tenant``; one whose metadata
  names another tenant is refused. A document's point id derives from the tenant *and*
  its id (:meth:`Tenancy.point_id`), so two tenants may use the same ids and never
  overwrite each other. (The alternative, checking for the id under another tenant and
  refusing, would fail one tenant's writes because of another's data and tell it which
  ids the other uses.) Documents without an id get the content hash as before, which
  covers the metadata and so the tenant. Rewriting a document an unbound writer stored
  with this tenant's metadata replaces that copy (deleted only if this tenant owns it),
  so moving to tenant binding duplicates nothing;
* **get_by_ids**: only points whose stored metadata names this tenant, whatever id is
  asked for (a result's point id, the caller's id, an id of another tenant);
* **delete** (and so the cleanup of LangChain's ``index()``): the ids *and* the tenant
  condition in one engine call, so another tenant's point is never deleted, even one
  written in between; ids of another tenant are ignored as unknown;
* **count**: this tenant's points.

The tenant key gets a payload index where it helps: ``is_tenant`` keyword index on
Qdrant Edge and on a Qdrant server (an integer index for integer tenants, which Qdrant's
``is_tenant`` does not cover); qdrant-client's embedded mode ignores payload indexes, so
none is made there. Confinement never depends on the index.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybrid_retriever.collection import METADATA_KEY
from hybrid_retriever.documents import (
    RESERVED_METADATA_KEYS,
    PreparedDocument,
    lookup_point_ids,
    prepare_document,
)
from hybrid_retriever.errors import InvalidDocumentError, InvalidParameterError

if TYPE_CHECKING:
    from qdrant_client.http import models

    from hybrid_retriever.storage.base import StoredPoint

DEFAULT_TENANT_KEY = "tenant"
"""The metadata key that holds a document's tenant (payload path ``metadata.tenant``)."""

TENANT_ID_NAMESPACE = uuid.UUID("0c5b7e2a-93d4-5f61-a8e0-7d2c4b9f1e36")
"""Point ids of tenant-bound documents: uuid5 of (tenant key, tenant, the caller's id)."""

_INT64_MAX = 2**63 - 1
_FORBIDDEN_KEY_CHARACTERS = frozenset(".[]")


@dataclass(frozen=True, slots=True)
class Tenancy:
    """One tenant of a collection: the metadata key and the value a retriever is bound to."""

    key: str
    value: str | int

    @property
    def payload_key(self) -> str:
        """Where the tenant lives in the stored payload, as filters name it."""
        return f"{METADATA_KEY}.{self.key}"

    def __repr__(self) -> str:
        return f"tenant {self.value!r} (metadata key {self.key!r})"

    # -- reading -----------------------------------------------------------------------------

    def condition(self) -> models.FieldCondition:
        from qdrant_client.http import models

        return models.FieldCondition(
            key=self.payload_key, match=models.MatchValue(value=self.value)
        )

    def confine(self, caller_filter: models.Filter | None) -> models.Filter:
        """The caller's filter, restricted to this tenant: both must hold, so no clause of
        the caller's filter can let another tenant's points through."""
        from qdrant_client.http import models

        must: list[Any] = [self.condition()]
        if caller_filter is not None:
            must.append(caller_filter)
        return models.Filter(must=must)

    def owns(self, payload: Mapping[str, Any]) -> bool:
        """Whether a stored payload belongs to this tenant (type and value: ``7`` is not
        ``"7"``, as for the engine's match)."""
        metadata = payload.get(METADATA_KEY)
        if not isinstance(metadata, Mapping):
            return False
        return _same_tenant(metadata.get(self.key), self.value)

    def owned(self, points: Iterable[StoredPoint]) -> list[StoredPoint]:
        return [p for p in points if self.owns(p.payload)]

    def lookup_point_ids(self, ids: Iterable[Any]) -> list[list[str]]:
        """For each id, the points it may name: this tenant's point for it, and the ones an
        unbound retriever would look at (a result's point id; documents written before the
        binding). Only those this tenant owns are ever read or deleted."""
        listed = ids if isinstance(ids, str | int | Sequence) else list(ids)
        plain = lookup_point_ids(listed)  # validates, and refuses a single id
        return [
            list(dict.fromkeys([self.point_id(given), *candidates]))
            for given, candidates in zip(listed, plain, strict=True)
        ]

    # -- writing -----------------------------------------------------------------------------

    def point_id(self, doc_id: str | int) -> str:
        """The point id of this tenant's document ``doc_id`` (``"1"`` and ``1`` are one id,
        as for unbound documents; the tenants ``"1"`` and ``1`` are two tenants)."""
        kind = "int" if isinstance(self.value, int) else "str"
        name = f"{self.key}\x00{kind}:{self.value}\x00{doc_id}"
        return str(uuid.uuid5(TENANT_ID_NAMESPACE, name))

    def prepare(self, text: Any, metadata: Any, doc_id: Any, *, position: int) -> PreparedDocument:
        """:func:`~hybrid_retriever.documents.prepare_document` for this tenant: the tenant
        set in the metadata, the point id derived with the tenant. It replaces the copy an
        unbound writer made of this tenant's document (under the id itself if a UUID, else
        its hash); the ingestion deletes that copy only if this tenant owns it."""
        stamped = self._stamped(metadata, position)
        prepared = prepare_document(text, stamped, doc_id, position=position)
        if doc_id is None:
            return prepared  # the content hash covers the metadata, the tenant included
        unbound = lookup_point_ids([doc_id])[0][0]
        return dataclasses.replace(prepared, point_id=self.point_id(doc_id), replaces=unbound)

    def _stamped(self, metadata: Any, position: int) -> Any:
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, Mapping):
            return metadata  # prepare_document refuses it with its own message
        if self.key in metadata and not _same_tenant(metadata[self.key], self.value):
            raise InvalidDocumentError(
                f"Document at position {position} has metadata[{self.key!r}] = "
                f"{metadata[self.key]!r}, but this retriever is bound to {self!r}; it may only "
                "write its own tenant's documents. Drop the key (it is set for you) or write "
                "the document through a retriever bound to that tenant."
            )
        return {**metadata, self.key: self.value}


def tenancy_of(tenant: Any, tenant_key: Any) -> Tenancy | None:
    """The validated binding of ``tenant=`` / ``tenant_key=``; None when not bound."""
    key = check_tenant_key(tenant_key)
    if tenant is None:
        if key != DEFAULT_TENANT_KEY:
            raise InvalidParameterError(
                f"tenant_key={key!r} was given without tenant=; pass the tenant this "
                "retriever is bound to, e.g. tenant='acme', or drop tenant_key."
            )
        return None
    return Tenancy(key=key, value=check_tenant(tenant))


def check_tenant(tenant: Any) -> str | int:
    if isinstance(tenant, bool) or not isinstance(tenant, str | int):
        raise InvalidParameterError(
            f"tenant must be a non-empty string or an integer (the value of the tenant key "
            f"in each document's metadata), not {type(tenant).__name__}."
        )
    if isinstance(tenant, int) and not -_INT64_MAX - 1 <= tenant <= _INT64_MAX:
        raise InvalidParameterError(
            f"tenant={tenant} is outside the signed 64-bit range Qdrant stores; pass it as a "
            "string."
        )
    if isinstance(tenant, str):
        if not tenant.strip():
            raise InvalidParameterError(
                "tenant is an empty or whitespace-only string; pass the tenant's name or id."
            )
        _check_unicode(tenant, "tenant")
    return tenant


def check_tenant_key(tenant_key: Any) -> str:
    if tenant_key is None:
        return DEFAULT_TENANT_KEY
    if not isinstance(tenant_key, str) or not tenant_key.strip():
        raise InvalidParameterError(
            f"tenant_key must be a non-empty metadata key such as {DEFAULT_TENANT_KEY!r}, "
            f"not {tenant_key!r}."
        )
    _check_unicode(tenant_key, "tenant_key")
    if _FORBIDDEN_KEY_CHARACTERS.intersection(tenant_key):
        raise InvalidParameterError(
            f"tenant_key={tenant_key!r} is not a plain metadata key: it names a key of each "
            f"document's metadata (stored at '{METADATA_KEY}.<key>'), so it may not contain "
            f"'.', '[' or ']'. For a payload path such as 'metadata.tenant', pass 'tenant'."
        )
    if tenant_key in RESERVED_METADATA_KEYS:
        raise InvalidParameterError(
            f"tenant_key={tenant_key!r} is a key the retriever adds to results; pick another "
            f"name, such as {DEFAULT_TENANT_KEY!r}."
        )
    return tenant_key


def check_rebinding(bound: Tenancy | None, overrides: Mapping[str, Any]) -> None:
    """A retriever made from a tenant-bound store stays bound to the same tenant."""
    if bound is None:
        return
    wanted = tenancy_of(
        overrides.get("tenant", bound.value), overrides.get("tenant_key", bound.key)
    )
    if wanted != bound:
        raise InvalidParameterError(
            f"This store is bound to {bound!r}; a retriever made from it is bound to the same "
            "tenant. Open another store with tenant=... for another tenant."
        )


def _same_tenant(stored: Any, tenant: str | int) -> bool:
    if isinstance(stored, bool) or type(stored) is not type(tenant):
        return False
    return bool(stored == tenant)


def _check_unicode(text: str, name: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidParameterError(
            f"{name} has an invalid character at position {exc.start} (a lone surrogate); "
            "it is not valid Unicode."
        ) from None
