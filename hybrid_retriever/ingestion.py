"""Writing documents into the collection: validate, encode, upsert, in batches.

Input is any iterable, generators included, consumed one batch at a time, so a
corpus never has to fit in memory. Each batch is fully validated before any of
it is encoded or written, and upserts are idempotent by id, so a run that stops
halfway can simply be run again. Encoding (CPU) and writing (the engine) are
pipelined: batch n+1 is encoded while batch n is upserted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from hybrid_retriever.collection import CollectionSpec, check_layout, check_writable
from hybrid_retriever.documents import PreparedDocument, prepare_document
from hybrid_retriever.encoders.base import DenseEncoder, SparseEncoder
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.errors import (
    CollectionMismatchError,
    DuplicateIdError,
    InvalidParameterError,
)
from hybrid_retriever.model_record import (
    ModelCheckState,
    acheck_models,
    acreate_recorded,
    check_models,
    create_recorded,
)
from hybrid_retriever.search_options import BM25, DENSE, SPARSE
from hybrid_retriever.storage.base import (
    CollectionExistsError,
    StorageBackend,
    StoredPoint,
    Vector,
)
from hybrid_retriever.tenancy import Tenancy
from hybrid_retriever.truncation import TruncationTally
from hybrid_retriever.vector_checks import check_document_vectors

DEFAULT_BATCH_SIZE = 256
"""Documents per encode-and-write step: big enough that length-sorting inside the
encoders keeps padding small, small enough that a batch's vectors stay a few MB."""


@dataclass(frozen=True)
class Indexer:
    """Everything needed to write hybrid points into one collection."""

    storage: StorageBackend
    spec: CollectionSpec
    dense_encoder: DenseEncoder
    sparse_encoder: SparseEncoder
    bm25_encoder: Bm25Encoder | None = None
    """Writes the BM25 vector too, when the spec names one."""
    allow_model_mismatch: bool = False
    """Write even if the collection's recorded models differ (see ``model_record``)."""
    model_state: ModelCheckState | None = None
    tenancy: Tenancy | None = None
    """Write every document into this tenant (see ``tenancy``); None: unbound."""

    def index(
        self,
        documents: Iterable[Document],
        *,
        ids: Iterable[str | int | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Index ``documents``; return their ids (see ``PreparedDocument.document_id``) in
        input order.

        Pipelined: while one batch is written, the next is encoded. At most one write
        is in flight, and any write error surfaces before more is encoded. Documents
        that an encoder cuts (longer than its model reads) are counted, and one
        :class:`~hybrid_retriever.truncation.TruncationWarning` says how many.
        """
        written: list[str] = []
        tally = self._tally()
        with (
            _progress(documents, self.spec.name, show_progress) as bar,
            ThreadPoolExecutor(1, thread_name_prefix="hybrid-retriever-write") as writer,
        ):
            pending: Future[None] | None = None
            for number, batch in enumerate(
                _prepared_batches(documents, ids, batch_size, self.tenancy)
            ):
                if number == 0:
                    self._ensure_collection()
                    if self.tenancy is not None:
                        self.storage.ensure_tenant_index(
                            self.spec.name,
                            self.tenancy.payload_key,
                            integer=isinstance(self.tenancy.value, int),
                        )
                points = self._encode(batch.unique, tally) if batch.unique else []
                if pending is not None:
                    pending.result()
                if points:
                    pending = writer.submit(self._write, points, batch.replaced)
                    pending.add_done_callback(_advance(bar, len(batch.document_ids)))
                else:
                    pending = None
                    bar.update(len(batch.document_ids))
                written.extend(batch.document_ids)
            if pending is not None:
                pending.result()
        if written:
            self.storage.optimize(self.spec.name)
        tally.warn(stacklevel=4)
        return written

    async def aindex(
        self,
        documents: Iterable[Document],
        *,
        ids: Iterable[str | int | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Async :meth:`index`: encoding runs in a worker thread, writes use the async client,
        and the next batch is encoded while the last one is written."""
        written: list[str] = []
        tally = self._tally()
        with _progress(documents, self.spec.name, show_progress) as bar:
            number = 0
            pending: asyncio.Task[None] | None = None
            async for batch in _athreaded(
                _prepared_batches(documents, ids, batch_size, self.tenancy)
            ):
                if number == 0:
                    await self._aensure_collection()
                    if self.tenancy is not None:
                        await self.storage.aensure_tenant_index(
                            self.spec.name,
                            self.tenancy.payload_key,
                            integer=isinstance(self.tenancy.value, int),
                        )
                points = (
                    await asyncio.to_thread(self._encode, batch.unique, tally)
                    if batch.unique
                    else []
                )
                if pending is not None:
                    await pending
                pending = None
                if points:
                    pending = asyncio.create_task(self._awrite(points, batch.replaced))
                    pending.add_done_callback(_advance(bar, len(batch.document_ids)))
                else:
                    bar.update(len(batch.document_ids))
                written.extend(batch.document_ids)
                number += 1
            if pending is not None:
                await pending
        if written:
            await self.storage.aoptimize(self.spec.name)
        tally.warn(stacklevel=4)
        return written

    def _write(self, points: Sequence[StoredPoint], replaced: Sequence[str]) -> None:
        """Upsert, then drop the older copies the new points replace (never the other way
        round, so a crash in between leaves a duplicate to clean up, never a loss)."""
        self.storage.upsert(self.spec.name, points)
        if replaced and self.tenancy is not None:  # never another tenant's point
            self.storage.delete_matching(self.spec.name, replaced, self.tenancy.confine(None))
        elif replaced:
            self.storage.delete(self.spec.name, replaced)

    async def _awrite(self, points: Sequence[StoredPoint], replaced: Sequence[str]) -> None:
        await self.storage.aupsert(self.spec.name, points)
        if replaced and self.tenancy is not None:
            await self.storage.adelete_matching(
                self.spec.name, replaced, self.tenancy.confine(None)
            )
        elif replaced:
            await self.storage.adelete(self.spec.name, replaced)

    def _tally(self) -> TruncationTally:
        return TruncationTally({"dense": self.dense_encoder, "sparse": self.sparse_encoder})

    def _encode(
        self, documents: Sequence[PreparedDocument], tally: TruncationTally | None = None
    ) -> list[StoredPoint]:
        texts = [d.text for d in documents]
        if tally is not None:
            tally.add(texts)
        dense = self.dense_encoder.encode_documents(texts)
        sparse = self.sparse_encoder.encode_documents(texts)
        for vector in dense:
            if len(vector) != self.spec.dense_size:
                raise CollectionMismatchError(
                    f"The dense encoder {self.dense_encoder.name!r} returned a "
                    f"{len(vector)}-dimensional vector, but collection {self.spec.name!r} "
                    f"expects {self.spec.dense_size}. The encoder must return vectors of "
                    "one fixed size."
                )
        where = [(d.position, d.document_id) for d in documents]
        check_document_vectors(
            dense, branch=DENSE, encoder=self.dense_encoder.name, documents=where
        )
        check_document_vectors(
            sparse, branch=SPARSE, encoder=self.sparse_encoder.name, documents=where
        )
        vectors: list[dict[str, Vector]] = [
            {self.spec.dense_vector_name: d, self.spec.sparse_vector_name: s}
            for d, s in zip(dense, sparse, strict=True)
        ]
        if self.bm25_encoder is not None and self.spec.bm25_vector_name is not None:
            bm25 = self.bm25_encoder.encode_documents(texts)
            check_document_vectors(
                bm25, branch=BM25, encoder=self.bm25_encoder.name, documents=where
            )
            for named, b in zip(vectors, bm25, strict=True):
                named[self.spec.bm25_vector_name] = b
        return [
            StoredPoint(id=doc.point_id, vectors=named, payload=doc.payload)
            for doc, named in zip(documents, vectors, strict=True)
        ]

    def _ensure_collection(self) -> None:
        """Create the collection and record its models, or check that it fits them."""
        layout = self.storage.get_layout(self.spec.name)
        if layout is None:
            try:
                create_recorded(
                    self.storage,
                    self.spec,
                    self.dense_encoder,
                    self.sparse_encoder,
                    self.bm25_encoder,
                )
            except CollectionExistsError:  # another writer won the race; check theirs
                layout = self.storage.get_layout(self.spec.name)
            else:
                return
        if layout is not None:
            check_layout(self.spec, layout, encoder_name=self.dense_encoder.name)
            check_writable(self.spec, layout)
            check_models(
                self.storage,
                self.spec,
                self.dense_encoder,
                self.sparse_encoder,
                self.bm25_encoder,
                allow_mismatch=self.allow_model_mismatch,
                writing=True,
                state=self.model_state,
            )

    async def _aensure_collection(self) -> None:
        layout = await self.storage.aget_layout(self.spec.name)
        if layout is None:
            try:
                await acreate_recorded(
                    self.storage,
                    self.spec,
                    self.dense_encoder,
                    self.sparse_encoder,
                    self.bm25_encoder,
                )
            except CollectionExistsError:
                layout = await self.storage.aget_layout(self.spec.name)
            else:
                return
        if layout is not None:
            check_layout(self.spec, layout, encoder_name=self.dense_encoder.name)
            check_writable(self.spec, layout)
            await acheck_models(
                self.storage,
                self.spec,
                self.dense_encoder,
                self.sparse_encoder,
                self.bm25_encoder,
                allow_mismatch=self.allow_model_mismatch,
                writing=True,
                state=self.model_state,
            )


@dataclass(frozen=True)
class _Batch:
    document_ids: list[str]
    """One id per input document, in input order (repeats included)."""
    unique: list[PreparedDocument]
    """The documents to write: each point once, skipping any already written by this call."""

    @property
    def replaced(self) -> list[str]:
        """Older copies of these documents to remove once they are written."""
        return [d.replaces for d in self.unique if d.replaces is not None]


def _prepared_batches(
    documents: Iterable[Document],
    ids: Iterable[str | int | None] | None,
    batch_size: int,
    tenancy: Tenancy | None = None,
) -> Iterator[_Batch]:
    """Validated batches. A document repeated verbatim is written once; two different
    documents with the same id are refused, since one would silently overwrite the other."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if isinstance(documents, str | Document):
        raise InvalidParameterError(
            "documents must be an iterable of Documents (or texts for add_texts), not a "
            f"single {type(documents).__name__}. Wrap it in a list."
        )
    if (
        ids is not None
        and isinstance(documents, Sized)
        and isinstance(ids, Sized)
        and len(ids) != len(documents)
    ):
        raise InvalidParameterError(
            f"Got {len(documents)} documents but {len(ids)} ids; pass one id per document."
        )
    pairs = _pair_with_ids(documents, ids)
    fingerprints: dict[str, int] = {}
    position = 0
    while chunk := list(itertools.islice(pairs, batch_size)):
        document_ids: list[str] = []
        unique: list[PreparedDocument] = []
        for document, doc_id in chunk:
            if not isinstance(document, Document):
                raise InvalidParameterError(
                    f"Item at position {position} is a {type(document).__name__}, not a "
                    "langchain Document. Use add_texts for plain strings."
                )
            own_id = doc_id if doc_id is not None else document.id
            prepare = prepare_document if tenancy is None else tenancy.prepare
            prepared = prepare(document.page_content, document.metadata, own_id, position=position)
            fingerprint = hash(json.dumps(prepared.payload, sort_keys=True, ensure_ascii=False))
            previous = fingerprints.get(prepared.point_id)
            if previous is None:
                fingerprints[prepared.point_id] = fingerprint
                unique.append(prepared)
            elif previous != fingerprint:
                raise DuplicateIdError(
                    f"Document at position {position} has id {own_id!r}, already used by a "
                    "different document in this call. Give each document its own id."
                )
            document_ids.append(prepared.document_id)
            position += 1
        yield _Batch(document_ids=document_ids, unique=unique)


def _pair_with_ids(
    documents: Iterable[Document], ids: Iterable[str | int | None] | None
) -> Iterator[tuple[Document, str | int | None]]:
    if ids is None:
        for document in documents:
            yield document, None
        return
    sentinel: Any = object()
    for document, doc_id in itertools.zip_longest(documents, ids, fillvalue=sentinel):
        if document is sentinel or doc_id is sentinel:
            raise InvalidParameterError(
                "documents and ids have different lengths; pass one id per document."
            )
        yield document, doc_id


def _advance(bar: Any, count: int) -> Callable[[Any], None]:
    """A done-callback that counts a batch on the progress bar once its write succeeded."""

    def done(write: Any) -> None:
        if not write.cancelled() and write.exception() is None:
            bar.update(count)

    return done


async def _athreaded(iterator: Iterator[_Batch]) -> AsyncIterator[_Batch]:
    """Pull from a sync iterator in a worker thread, so a slow source never blocks the loop."""
    done = object()
    while (item := await asyncio.to_thread(next, iterator, done)) is not done:
        yield item  # type: ignore[misc]


class _progress:
    """A tqdm bar that only appears on runs longer than a couple of seconds."""

    def __init__(self, documents: Iterable[Any], collection: str, enabled: bool) -> None:
        from tqdm.auto import tqdm

        total = len(documents) if isinstance(documents, Sized) else None
        self._bar = tqdm(
            total=total,
            unit="doc",
            desc=f"Indexing into {collection!r}",
            delay=2.0,
            disable=not enabled,
        )

    def __enter__(self) -> Any:
        return self._bar

    def __exit__(self, *exc: object) -> None:
        self._bar.close()
