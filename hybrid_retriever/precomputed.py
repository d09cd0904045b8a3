"""Writing documents whose vectors were computed elsewhere (a GPU box, a batch job).

Encoding is what costs when indexing; a corpus encoded once elsewhere should not be
encoded again here. :class:`EmbeddedDocument` carries a document with its dense and
SPLADE vectors, and :class:`EmbeddedWriter` (``HybridRetriever.add_embedded_documents``)
writes them through the same rules as ``add_documents``: the same ids, payload and
idempotence (``documents.prepare_document``; writing again overwrites, never duplicates),
a batch refused whole before any of it is written, and the same model record.

What the vectors are checked against, since nothing here computed them:

* the models: the caller declares which models computed them (``dense_model=``,
  ``sparse_model=``). They must be the retriever's own encoders, which encode the queries
  searched against these vectors, and the models the collection's record names
  (``model_record``); otherwise ``CollectionMismatchError`` (a warning with
  ``allow_model_mismatch=True``). The record itself is made as ``add_documents`` makes it,
  with the encoders' probe vectors: so the encoders are loaded once per call (a second or
  two for the default models), and a collection built here is checked by every later
  reader exactly as one built by ``add_documents``;
* the vectors: the dense one has the collection's dimension, and the sparse one integer
  indices in ``[0, vocabulary size)`` (the SPLADE model's vocabulary; below ``2**32``,
  the engine's limit, where an encoder does not say its vocabulary), each once, with as
  many values; no NaN, infinity or all-zero dense vector (``vector_checks``). Values are
  checked as the engine stores them (32-bit floats): a finite 64-bit value beyond
  float32's range would be stored as infinity, so it is refused too.

A BM25 vector (collections with a BM25 branch) is computed here from the text by the
retriever's ``Bm25Encoder`` (pure Python, cheap), unless the document brings its own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybrid_retriever.collection import (
    CONTENT_KEY,
    CollectionSpec,
    check_layout,
    check_writable,
)
from hybrid_retriever.documents import PreparedDocument, prepare_document
from hybrid_retriever.errors import (
    CollectionMismatchError,
    DuplicateIdError,
    InvalidDocumentError,
    InvalidParameterError,
    ModelRecordWarning,
)
from hybrid_retriever.model_record import (
    OVERRIDE_HINT,
    ModelCheckState,
    check_models,
    create_recorded,
)
from hybrid_retriever.search_options import BM25, DENSE, SPARSE
from hybrid_retriever.storage.base import CollectionExistsError, StoredPoint, Vector
from hybrid_retriever.vector_checks import vector_problem
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    from hybrid_retriever.encoders.base import SparseEncoder
    from hybrid_retriever.encoders.bm25 import Bm25Encoder
    from hybrid_retriever.retriever import HybridRetriever

DEFAULT_EMBEDDED_BATCH_SIZE = 1024
"""Points per validation-and-upsert step. Nothing is encoded, so a batch is only its
vectors (~3 MB at 384 dense dimensions and ~300 SPLADE terms); larger batches amortise
the engine's per-call cost (measured: benchmarks/precomputed_write.py)."""

SPARSE_INDEX_LIMIT = 2**32
"""Qdrant stores sparse indices as unsigned 32-bit integers."""


@dataclass(frozen=True, slots=True)
class EmbeddedDocument:
    """A document with its vectors already computed, for
    :meth:`~hybrid_retriever.HybridRetriever.add_embedded_documents`.

    ``dense``: a list (or 1-D numpy array) of floats from the dense model; ``sparse``: a
    :class:`~hybrid_retriever.vectors.SparseVector` (or ``{"indices": [...], "values":
    [...]}``) from the SPLADE model, each the vector of ``page_content`` as a document
    (not as a query). ``id`` and ``metadata`` as for ``add_documents``. ``bm25``: only to
    override the BM25 vector computed from ``page_content``.
    """

    page_content: str
    dense: Sequence[float] | Any
    sparse: SparseVector | Mapping[str, Any]
    metadata: Mapping[str, Any] | None = None
    id: str | int | None = None
    bm25: SparseVector | Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class VectorRules:
    """What one collection accepts from precomputed vectors."""

    dense_size: int
    vocabulary_size: int | None = None
    """The SPLADE model's vocabulary; None: only the engine's limit applies."""

    @property
    def index_limit(self) -> int:
        return SPARSE_INDEX_LIMIT if self.vocabulary_size is None else self.vocabulary_size

    def dense(self, vector: Any, where: str) -> list[float]:
        """``vector`` as stored (float32 values as Python floats); refused with the reason."""
        try:
            array = _as_float64(vector)
        except (TypeError, ValueError):
            raise InvalidDocumentError(
                f"{where}: its dense vector is not a list of numbers "
                f"({type(vector).__name__}). Give one float per dimension."
            ) from None
        if array.ndim != 1 or array.shape[0] != self.dense_size:
            shape = f"{array.shape[0]} values" if array.ndim == 1 else f"shape {array.shape}"
            raise CollectionMismatchError(
                f"{where}: its dense vector has {shape}, but the collection's dense vectors "
                f"have {self.dense_size} dimensions. Nothing of this batch was written. "
                "Encode with the dense model the collection was built with (dense_model=)."
            )
        peak = abs(array).max()
        if not 0.0 < peak <= FLOAT32_MAX:  # one reduction: NaN, infinity, zeros, overflow
            raise InvalidDocumentError(
                f"{where}: its dense vector {_problem(array, DENSE)}, so it could never be "
                "found. Nothing of this batch was written. Re-encode this document, or drop it."
            )
        values: list[float] = array.astype("float32").tolist()
        return values

    def sparse(self, vector: Any, where: str, *, branch: str = SPARSE) -> SparseVector:
        """``vector`` as stored; refused with the reason (indices outside the vocabulary,
        repeated or not integers, values not finite)."""
        import numpy as np

        indices, values = _sparse_parts(vector, where, branch)
        try:
            index_array = np.asarray(indices)
            value_array = _as_float64(values)
        except (TypeError, ValueError):
            raise InvalidDocumentError(
                f"{where}: its {branch} vector's indices and values must be lists of numbers."
            ) from None
        if index_array.ndim != 1 or value_array.ndim != 1 or index_array.size != value_array.size:
            raise InvalidDocumentError(
                f"{where}: its {branch} vector has {index_array.size} indices but "
                f"{value_array.size} values (flat lists of the same length are needed)."
            )
        if index_array.size == 0:  # no terms: legitimate, found by dense search only
            return SparseVector(indices=[], values=[])
        if index_array.dtype.kind not in "iu":
            raise InvalidDocumentError(
                f"{where}: its {branch} vector's indices are not integers (read as "
                f"{index_array.dtype}); give vocabulary token ids as integers."
            )
        # Encoders give indices in increasing order: then the ends are the extremes and
        # none repeats, with no sort.
        ordered = bool((index_array[1:] > index_array[:-1]).all())
        if ordered:
            low, high = int(index_array[0]), int(index_array[-1])
        else:
            low, high = int(index_array.min()), int(index_array.max())
        limit = SPARSE_INDEX_LIMIT if branch == BM25 else self.index_limit
        if low < 0 or high >= limit:
            bad = low if low < 0 else high
            what = (
                f"the sparse model's vocabulary of {limit} terms"
                if limit != SPARSE_INDEX_LIMIT
                else "the engine's range (0 to 2**32 - 1)"
            )
            raise InvalidDocumentError(
                f"{where}: its {branch} vector has index {bad}, outside {what}. Nothing of "
                "this batch was written. Encode with the model the collection was built with "
                "(sparse_model=), whose token ids these must be."
            )
        if not ordered and np.unique(index_array).size != index_array.size:
            raise InvalidDocumentError(
                f"{where}: its {branch} vector names an index twice; each term must appear "
                "once (sum or take the maximum of its weights)."
            )
        if not abs(value_array).max() <= FLOAT32_MAX:  # NaN fails this too
            raise InvalidDocumentError(
                f"{where}: its {branch} vector's values {_problem(value_array, branch)}. "
                "Nothing of this batch was written. Re-encode this document, or drop it."
            )
        return SparseVector(
            indices=index_array.tolist(), values=value_array.astype("float32").tolist()
        )

    def dense_batch(self, vectors: Sequence[Any]) -> list[list[float]] | None:
        """:meth:`dense` of every vector at once, as one matrix; None if any fails (then
        :meth:`dense` of each says which and why)."""
        import numpy as np

        try:
            matrix = np.asarray(vectors)
        except (TypeError, ValueError):  # ragged
            return None
        if matrix.ndim != 2 or matrix.shape[1] != self.dense_size or matrix.dtype.kind not in "fiu":
            return None
        peaks = abs(matrix.astype(np.float64, copy=False)).max(axis=1)
        if not ((peaks > 0.0) & (peaks <= FLOAT32_MAX)).all():
            return None
        rows: list[list[float]] = matrix.astype(np.float32).tolist()
        return rows

    def sparse_batch(self, vectors: Sequence[Any]) -> list[SparseVector] | None:
        """:meth:`sparse` of every vector at once, all indices and values concatenated;
        None if any fails, or has its indices out of order (then :meth:`sparse` of each)."""
        import numpy as np

        try:
            parts = [_sparse_parts(v, "", SPARSE) for v in vectors]
            index_rows = [np.asarray(i) for i, _ in parts]
            value_rows = [np.asarray(v) for _, v in parts]
        except (InvalidDocumentError, TypeError, ValueError):
            return None
        lengths = [row.size for row in index_rows]
        if any(
            i.ndim != 1 or v.ndim != 1 or i.size != v.size
            for i, v in zip(index_rows, value_rows, strict=True)
        ):
            return None
        filled = [i for i, row in enumerate(index_rows) if row.size]
        if not filled:
            return [SparseVector(indices=[], values=[]) for _ in vectors]
        indices = np.concatenate([index_rows[i] for i in filled])
        values = np.concatenate([value_rows[i] for i in filled])
        if indices.dtype.kind not in "iu" or values.dtype.kind not in "fiu":
            return None
        if int(indices.min()) < 0 or int(indices.max()) >= self.index_limit:
            return None
        if not abs(values.astype(np.float64, copy=False)).max() <= FLOAT32_MAX:
            return None
        # Increasing within each row (so no index repeats): every step up, but where a
        # row ends and the next begins.
        ends = np.cumsum([lengths[i] for i in filled])[:-1] - 1
        steps = indices[1:] > indices[:-1]
        steps[ends] = True
        if not steps.all():
            return None
        index_list = indices.tolist()
        value_list = values.astype(np.float32).tolist()
        result = []
        start = 0
        for length in lengths:
            end = start + length
            result.append(SparseVector(indices=index_list[start:end], values=value_list[start:end]))
            start = end
        return result


FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite float32: the engines store vector values as float32."""


def _as_float64(values: Any) -> Any:
    """Numbers as float64; ``TypeError`` for anything else (strings, booleans, None),
    which ``np.asarray(..., dtype=float)`` would convert or parse."""
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"not numbers ({array.dtype})")
    return array.astype(np.float64, copy=False)


def _problem(array: Any, branch: str) -> str:
    """What is wrong with a vector that failed the quick check, in words."""
    problem = vector_problem(array, branch=branch)
    if problem is not None:
        return problem
    position = int(abs(array).argmax())
    return (
        f"holds {array[position]} at position {position}, beyond the float32 range that the "
        "engine stores (it would be stored as infinity)"
    )


def _sparse_parts(vector: Any, where: str, branch: str) -> tuple[Any, Any]:
    if isinstance(vector, SparseVector):
        return vector.indices, vector.values
    if isinstance(vector, Mapping) and set(vector) == {"indices", "values"}:
        return vector["indices"], vector["values"]
    raise InvalidDocumentError(
        f"{where}: its {branch} vector is a {type(vector).__name__}; give a SparseVector or "
        '{"indices": [...], "values": [...]}.'
    )


def sparse_vocabulary_size(encoder: SparseEncoder) -> int | None:
    """How many terms ``encoder``'s vectors can index (its ``vocabulary_size``), or None
    when it does not say (then only the engine's limit is checked)."""
    size = getattr(encoder, "vocabulary_size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


@dataclass(frozen=True, slots=True)
class _Target:
    """The collection being written, once checked."""

    spec: CollectionSpec
    rules: VectorRules


@dataclass(frozen=True, slots=True)
class PreparedEmbedded:
    """One validated document with its vectors, ready to write."""

    prepared: PreparedDocument
    vectors: dict[str, Vector]


class EmbeddedWriter:
    """Writes :class:`EmbeddedDocument` s into one retriever's collection (see the module
    docstring for what is checked)."""

    def __init__(
        self,
        retriever: HybridRetriever,
        *,
        dense_model: str,
        sparse_model: str,
        bm25_encoder: Bm25Encoder | None,
        model_state: ModelCheckState | None = None,
    ) -> None:
        examples = (retriever.dense_encoder.name, retriever.sparse_encoder.name)
        for label, name, example in zip(
            ("dense_model", "sparse_model"), (dense_model, sparse_model), examples, strict=True
        ):
            if not isinstance(name, str) or not name:
                raise InvalidParameterError(
                    f"{label} must name the model that computed the vectors (for example "
                    f"{example!r}), not {name!r}."
                )
        self._retriever = retriever
        self._bm25_encoder = bm25_encoder
        """The retriever's BM25 encoder as resolved for this collection; None: no BM25."""
        self._declared = {DENSE: dense_model, SPARSE: sparse_model}
        self._model_state = model_state
        self._target: _Target | None = None

    # -- before anything is written ------------------------------------------------------------

    def rules(self) -> VectorRules:
        """What the vectors must be, after checking the declared models against the
        retriever's encoders and the collection's layout and record. Writes nothing (an
        unrecorded collection excepted: it gets the record ``add_documents`` would give it)."""
        return self._checked().rules

    def _checked(self) -> _Target:
        if self._target is None:
            self._check_declared_names()
            retriever = self._retriever
            layout = retriever.storage.get_layout(retriever.collection_name)
            if layout is not None:  # before any model loads: it may be the wrong one
                self._check_recorded_names()
            spec = retriever.collection_spec()  # loads the dense model
            if layout is not None:
                check_layout(spec, layout, encoder_name=retriever.dense_encoder.name)
                check_writable(spec, layout)
                self._check_models(spec)
            rules = VectorRules(
                dense_size=spec.dense_size,
                vocabulary_size=sparse_vocabulary_size(retriever.sparse_encoder),
            )
            self._target = _Target(spec, rules)
        return self._target

    def _check_declared_names(self) -> None:
        """The declared models must be the encoders that will encode the queries."""
        retriever = self._retriever
        encoders = {DENSE: retriever.dense_encoder.name, SPARSE: retriever.sparse_encoder.name}
        problems = [
            f"the {branch} vectors are declared as {self._declared[branch]!r}'s, but this "
            f"retriever encodes queries with {encoders[branch]!r}"
            for branch in (DENSE, SPARSE)
            if self._declared[branch] != encoders[branch]
        ]
        if problems:
            message = (
                "The vectors do not come from this retriever's models: "
                + "; ".join(problems)
                + " (vectors of two models are not comparable)."
            )
            self._mismatch(
                message,
                fix=" Open the retriever with the models that computed the vectors "
                "(dense_encoder=, sparse_encoder=), or declare the right names.",
            )

    def _check_recorded_names(self) -> None:
        """The declared models against the collection's record, by name: no model needed,
        and the clearest message. (``_check_models`` then compares the encoders' probes.)"""
        retriever = self._retriever
        name = retriever.collection_name
        record = retriever.storage.read_collection_record(name)
        vectors = record.get("vectors") if isinstance(record, Mapping) else None
        if isinstance(vectors, Mapping):
            names = {DENSE: retriever.dense_vector_name, SPARSE: retriever.sparse_vector_name}
            problems = []
            for branch, vector_name in names.items():
                entry = vectors.get(vector_name)
                model = entry.get("model") if isinstance(entry, Mapping) else None
                if isinstance(model, str) and model != self._declared[branch]:
                    problems.append(
                        f"its {branch} vector {vector_name!r} holds vectors of {model!r}, "
                        f"but these are declared as {self._declared[branch]!r}'s"
                    )
            if problems:
                self._mismatch(
                    f"Collection {name!r} in {retriever.storage!r} was written by other "
                    "models: " + "; ".join(problems) + ".",
                    fix=f" {OVERRIDE_HINT}",
                )

    def _check_models(self, spec: CollectionSpec) -> None:
        """The encoders' usual probe check against the record, which records them where
        the record lacks them (as a write by ``add_documents`` does)."""
        retriever = self._retriever
        check_models(
            retriever.storage,
            spec,
            retriever.dense_encoder,
            retriever.sparse_encoder,
            self._bm25_encoder,
            allow_mismatch=retriever.allow_model_mismatch,
            writing=True,
            state=self._model_state,
        )

    def _mismatch(self, message: str, *, fix: str) -> None:
        if not self._retriever.allow_model_mismatch:
            raise CollectionMismatchError(f"{message} Nothing was written.{fix}")
        import warnings

        warnings.warn(
            f"{message} Written anyway because allow_model_mismatch=True; results may be wrong.",
            ModelRecordWarning,
            stacklevel=4,
        )

    # -- writing -------------------------------------------------------------------------------

    def write(
        self,
        documents: Iterable[EmbeddedDocument],
        *,
        batch_size: int = DEFAULT_EMBEDDED_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Validate and write ``documents`` a batch at a time; return their ids (as
        ``add_documents`` does), in input order."""
        if isinstance(documents, EmbeddedDocument | str | Mapping):
            raise InvalidParameterError(
                "documents must be an iterable of EmbeddedDocument, not a single "
                f"{type(documents).__name__}. Wrap it in a list."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidParameterError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        stream = iter(documents)

        def prepared() -> Iterator[PreparedEmbedded]:
            position = 0
            while chunk := list(itertools.islice(stream, batch_size)):
                yield from self._prepare_batch(chunk, position)
                position += len(chunk)

        return self.write_prepared(prepared(), batch_size=batch_size, show_progress=show_progress)

    def write_prepared(
        self,
        documents: Iterable[PreparedEmbedded],
        *,
        batch_size: int = DEFAULT_EMBEDDED_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Write documents that :meth:`prepare_one` checked, a batch at a time; a batch is
        taken whole (so checked whole) before any of it is written. A document repeated
        verbatim is written once; two different ones under one id are refused."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidParameterError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        from tqdm.auto import tqdm

        target = self._checked()
        storage, name = self._retriever.storage, self._retriever.collection_name
        written: list[str] = []
        fingerprints: dict[str, int] = {}
        stream = iter(documents)
        position = 0
        created = False
        with tqdm(
            unit="doc", desc=f"Writing into {name!r}", delay=2.0, disable=not show_progress
        ) as bar:
            while chunk := list(itertools.islice(stream, batch_size)):
                points, replaced = _unique_points(chunk, position, fingerprints)
                position += len(chunk)
                if not created:
                    self._ensure_collection(target.spec)
                    created = True
                if points:
                    storage.upsert(name, points)
                    if replaced:  # after the upsert: a crash between leaves no loss
                        storage.delete(name, replaced)
                written.extend(ready.prepared.document_id for ready in chunk)
                bar.update(len(chunk))
        if written:
            storage.optimize(name)
        return written

    def _prepare_batch(
        self, chunk: Sequence[EmbeddedDocument], first_position: int
    ) -> list[PreparedEmbedded]:
        """A batch checked as :meth:`prepare_one` checks each document, but with the
        vectors checked and converted as one matrix each (a tenth of the per-document
        cost); when that finds a problem, document by document, for the message."""
        target = self._checked()
        spec, rules = target.spec, target.rules
        wheres = [f"Document at position {first_position + i}" for i in range(len(chunk))]
        documents = [
            self._prepared_document(d, where) for d, where in zip(chunk, wheres, strict=True)
        ]
        dense = rules.dense_batch([d.dense for d in chunk])
        sparse = rules.sparse_batch([d.sparse for d in chunk]) if dense is not None else None
        if dense is None or sparse is None:
            vectors = [
                self._vectors(d, target, where) for d, where in zip(chunk, wheres, strict=True)
            ]
        else:
            vectors = [
                {spec.dense_vector_name: v, spec.sparse_vector_name: s}
                for v, s in zip(dense, sparse, strict=True)
            ]
            self._add_bm25(chunk, vectors, target, wheres)
        return [PreparedEmbedded(p, v) for p, v in zip(documents, vectors, strict=True)]

    def _add_bm25(
        self,
        chunk: Sequence[EmbeddedDocument],
        vectors: list[dict[str, Vector]],
        target: _Target,
        wheres: Sequence[str],
    ) -> None:
        name = target.spec.bm25_vector_name
        encoder = self._bm25_encoder
        if name is None or encoder is None:
            for document, where in zip(chunk, wheres, strict=True):
                if document.bm25 is not None:
                    self._no_bm25_branch(where)
            return
        computed = [i for i, d in enumerate(chunk) if d.bm25 is None]
        encoded = encoder.encode_documents([chunk[i].page_content for i in computed])
        for i, vector in zip(computed, encoded, strict=True):
            vectors[i][name] = vector
        for i, document in enumerate(chunk):
            if document.bm25 is not None:
                vectors[i][name] = target.rules.sparse(document.bm25, wheres[i], branch=BM25)

    @staticmethod
    def _no_bm25_branch(where: str) -> None:
        raise InvalidDocumentError(
            f"{where} brings a BM25 vector, but this retriever has no BM25 branch to "
            "store it in. Open it with bm25_encoder=True, or leave bm25 out."
        )

    def _prepared_document(self, document: Any, where: str) -> PreparedDocument:
        if not isinstance(document, EmbeddedDocument):
            raise InvalidParameterError(
                f"{where} is a {type(document).__name__}, not an EmbeddedDocument."
            )
        try:
            return prepare_document(
                document.page_content, document.metadata, document.id, position=0
            )
        except InvalidDocumentError as exc:
            message = str(exc).replace("Document at position 0", where, 1)
            raise type(exc)(message) from None

    def prepare_one(self, document: EmbeddedDocument, where: str) -> PreparedEmbedded:
        """One document checked as :meth:`write` checks it; errors name ``where``."""
        target = self._checked()
        prepared = self._prepared_document(document, where)
        vectors = self._vectors(document, target, where)
        return PreparedEmbedded(prepared, vectors)

    def _vectors(
        self, document: EmbeddedDocument, target: _Target, where: str
    ) -> dict[str, Vector]:
        spec, rules = target.spec, target.rules
        vectors: dict[str, Vector] = {
            spec.dense_vector_name: rules.dense(document.dense, where),
            spec.sparse_vector_name: rules.sparse(document.sparse, where),
        }
        if spec.bm25_vector_name is not None:
            bm25_encoder = self._bm25_encoder
            if document.bm25 is not None:
                vectors[spec.bm25_vector_name] = rules.sparse(document.bm25, where, branch=BM25)
            elif bm25_encoder is not None:
                vectors[spec.bm25_vector_name] = bm25_encoder.encode_documents(
                    [document.page_content]
                )[0]
        elif document.bm25 is not None:
            self._no_bm25_branch(where)
        return vectors

    def _ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection with the model record ``add_documents`` would give it
        (the encoders' probe vectors), unless it exists (then :meth:`rules` checked it)."""
        retriever = self._retriever
        if retriever.storage.get_layout(spec.name) is not None:
            return
        try:
            create_recorded(
                retriever.storage,
                spec,
                retriever.dense_encoder,
                retriever.sparse_encoder,
                self._bm25_encoder,
            )
        except CollectionExistsError:  # another writer won the race: check theirs
            layout = retriever.storage.get_layout(spec.name)
            if layout is not None:
                check_layout(spec, layout, encoder_name=retriever.dense_encoder.name)
                check_writable(spec, layout)
                self._check_recorded_names()
                self._check_models(spec)


def _unique_points(
    chunk: Sequence[PreparedEmbedded], first_position: int, fingerprints: dict[str, int]
) -> tuple[list[StoredPoint], list[str]]:
    """The points of a batch, each once (``fingerprints``: the payloads written so far
    in this call, by point id), and the older copies they replace (``documents.py``)."""
    points: list[StoredPoint] = []
    replaced: list[str] = []
    for offset, ready in enumerate(chunk):
        prepared = ready.prepared
        fingerprint = payload_fingerprint(prepared.payload)
        previous = fingerprints.get(prepared.point_id)
        if previous is None:
            fingerprints[prepared.point_id] = fingerprint
            points.append(StoredPoint(prepared.point_id, ready.vectors, prepared.payload))
            if prepared.replaces is not None:
                replaced.append(prepared.replaces)
        elif previous != fingerprint:
            raise DuplicateIdError(
                f"Document at position {first_position + offset} has id "
                f"{prepared.document_id!r}, already used by a different document in this "
                "call. Give each document its own id."
            )
    return points, replaced


def payload_fingerprint(payload: Mapping[str, Any]) -> int:
    """Equal for equal payloads, as ``add_documents`` compares them; the text (most of the
    payload) is hashed as a string rather than JSON-encoded, which is a third of a write's
    time otherwise."""
    rest = {key: value for key, value in payload.items() if key != CONTENT_KEY}
    return hash((payload.get(CONTENT_KEY), json.dumps(rest, sort_keys=True, ensure_ascii=False)))
