"""Which models wrote a collection's vectors, kept with the collection, and the check.

A collection's layout says only its dense vector's size and distance: another
384-dimensional model fits it, opens, searches and writes without a word, and its
dense results are noise. So each collection this package creates carries a record
of the models that wrote it, one entry per named vector: the model's name, what ran
it, and its *probe vectors*, the (query) vectors of a few fixed texts.

Probe vectors rather than a hash of the weights: every encoder has them (a LangChain
``Embeddings`` behind an API has no weights to hash), and they change exactly when the
vectors do. They are compared with a tolerance, not for equality, because one model
gives slightly different vectors under another runtime, and PyTorch's fp32 and bf16
differ from one CPU to the next. Measured on the probes below: all-MiniLM-L6-v2 in int8
ONNX against fp32 (ONNX or PyTorch) and bf16, cosine 0.993-0.994 (splade-tiny 0.999);
a different model is far off: the same MiniLM cut to 5 of its 6 layers 0.44-0.52, to
1 layer 0.22-0.28 (splade-tiny cut to 1 of 2 layers 0.20-0.27), an unrelated
384-dimensional ``Embeddings`` about 0. Hence the bar :data:`MIN_PROBE_COSINE`. Where
scores depend on vector lengths (the sparse dot product; dense ``Dot``, ``Euclid``,
``Manhattan``), lengths must agree within :data:`MAX_NORM_CHANGE` too.

The runtime (backend and precision) is recorded and named in messages but does not
decide by itself: int8 and fp32 vectors of one model are interchangeable (docs/speed.md
"Speed"), and the probes catch any runtime that moves vectors further than that.

A BM25 vector (``encoders/bm25.py``) has no model: it is recorded by its encoder's
``identity()`` (language, k1, b, avg_len, tokeniser, stopwords, hash), compared for
equality, since any difference changes every stored weight. The stemmer's version is
recorded but not compared: a PyStemmer upgrade should not lock users out of their data.

The check runs once per retriever (and once per write call, before anything is
written). Probes go through ``encode_query`` (one text per call, and the path a
searching process has loaded anyway), once per encoder, and are cached: the query
path pays nothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybrid_retriever.collection import CollectionSpec, Distance
from hybrid_retriever.errors import CollectionMismatchError, ModelRecordWarning, StorageError
from hybrid_retriever.storage.base import RecordNotWrittenError
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    from hybrid_retriever.encoders.base import DenseEncoder, SparseEncoder
    from hybrid_retriever.encoders.bm25 import Bm25Encoder
    from hybrid_retriever.storage.base import StorageBackend

PROBE_TEXTS: tuple[str, ...] = (
    "Qdrant stores vectors and payloads for search.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "The 1969 Moon landing was watched by millions on television.",
)
"""Short, unrelated texts: a model's vectors of them are its fingerprint."""

RECORD_FORMAT = 1
MIN_PROBE_COSINE = 0.9
"""Same model under another runtime: 0.993 and over; a different model: 0.52 at most."""
MAX_NORM_CHANGE = 0.1
"""Where lengths count, a probe vector's length may differ by this fraction at most."""
_SIGNIFICANT_DIGITS = 6

OVERRIDE_HINT = (
    "Use the models the collection was built with, or a new collection_name for these "
    "models; or, if you know their vectors are interchangeable, pass "
    "allow_model_mismatch=True."
)

BM25_HINT = (
    "For BM25, leave bm25_encoder unset (or True): the settings the collection recorded are "
    "then used."
)


@dataclass
class ModelCheckState:
    """Shared by a retriever and its writes, so that a collection without a record is
    warned about once, not once per call."""

    warned_unrecorded: bool = False


Probe = dict[int, float]
"""A probe vector as {coordinate: value}: every coordinate of a dense vector, the terms
of a sparse one."""


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """What the record says about the model behind one named vector."""

    model: str
    runtime: str
    probe_texts: tuple[str, ...]
    probes: tuple[Probe, ...]
    identity: dict[str, Any] | None = None
    """What decides the vectors of an encoder without a model (BM25); compared exactly."""

    def describe(self) -> str:
        return f"{self.model!r} ({self.runtime})"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "runtime": self.runtime,
            "probe_texts": list(self.probe_texts),
            "probes": [
                {"indices": list(probe), "values": [_rounded(v) for v in probe.values()]}
                for probe in self.probes
            ],
        }
        if self.identity is not None:
            data["identity"] = dict(self.identity)
        return data

    @classmethod
    def from_json(cls, data: Any) -> ModelEntry:
        """Parse one entry; ``ValueError`` if it is not what :meth:`to_json` writes."""
        try:
            texts = tuple(str(t) for t in data["probe_texts"])
            probes = tuple(
                dict(zip(map(int, p["indices"]), map(float, p["values"]), strict=True))
                for p in data["probes"]
            )
            identity = data.get("identity")
            if identity is not None and not isinstance(identity, dict):
                raise TypeError("identity is not a mapping")
            entry = cls(str(data["model"]), str(data["runtime"]), texts, probes, identity)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed model entry ({type(exc).__name__}: {exc})") from None
        if (identity is None and not texts) or len(texts) != len(probes):
            raise ValueError("malformed model entry (probe texts and vectors do not pair up)")
        return entry


def model_entry(encoder: DenseEncoder | SparseEncoder, texts: Sequence[str]) -> ModelEntry:
    """``encoder``'s entry over ``texts`` (its probe vectors are cached by the encoder);
    an encoder with an exact ``identity()`` (BM25) is recorded by it, with no probes."""
    identity = getattr(encoder, "identity", None)
    if callable(identity):
        return ModelEntry(encoder.name, encoder.runtime, (), (), dict(identity()))
    return ModelEntry(
        model=encoder.name,
        runtime=encoder.runtime,
        probe_texts=tuple(texts),
        probes=tuple(_as_probe(v) for v in encoder.probe_vectors(texts)),
    )


def _as_probe(vector: Sequence[float] | SparseVector) -> Probe:
    if isinstance(vector, SparseVector):
        return dict(zip(vector.indices, map(float, vector.values), strict=True))
    return {i: float(v) for i, v in enumerate(vector)}


def _rounded(value: float) -> float:
    """Six significant digits: far finer than the tolerance, and a compact record."""
    return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")


# -- the record: {"format": 1, "vectors": {vector name: entry}} --------------------------------


@dataclass(frozen=True, slots=True)
class _Branch:
    label: str
    """"dense", "sparse" or "bm25", as in messages."""
    vector_name: str
    encoder: DenseEncoder | SparseEncoder
    uses_norm: bool


def _branches(
    spec: CollectionSpec,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    bm25: Bm25Encoder | None,
) -> list[_Branch]:
    branches = [
        _Branch("dense", spec.dense_vector_name, dense, spec.distance is not Distance.COSINE),
        _Branch("sparse", spec.sparse_vector_name, sparse, True),
    ]
    if spec.bm25_vector_name is not None and bm25 is not None:
        branches.append(_Branch("bm25", spec.bm25_vector_name, bm25, True))
    return branches


def _entries(record: Mapping[str, Any] | None, where: str) -> dict[str, ModelEntry]:
    """The record's entries by vector name; ``StorageError`` if it cannot be read."""
    if record is None:
        return {}
    problem = None
    if record.get("format") != RECORD_FORMAT:
        problem = (
            f"format {record.get('format')!r} is not {RECORD_FORMAT} (written by another "
            "version of hybrid-retriever?)"
        )
    elif not isinstance(record.get("vectors"), Mapping):
        problem = "it has no 'vectors' mapping"
    else:
        try:
            return {str(n): ModelEntry.from_json(e) for n, e in record["vectors"].items()}
        except ValueError as exc:
            problem = str(exc)
    raise StorageError(
        f"The record of the models that wrote {where} cannot be read: {problem}. Upgrade "
        "hybrid-retriever if a newer version wrote it; or delete the record (the next write "
        "then records the models that write) and make sure they are the ones the collection "
        "was built with."
    )


def recorded_identity(
    record: Mapping[str, Any] | None, vector_name: str, *, where: str
) -> dict[str, Any] | None:
    """The recorded identity of the encoder behind ``vector_name`` (BM25's settings), or
    None when the record has no such entry; ``StorageError`` if the record is unreadable."""
    entry = _entries(record, where).get(vector_name)
    return None if entry is None else entry.identity


def _difference(stored: ModelEntry, current: ModelEntry, *, uses_norm: bool) -> str | None:
    """How ``current``'s probe vectors differ from ``stored``'s beyond the tolerance."""
    if stored.identity is not None or current.identity is not None:
        return _identity_difference(stored.identity or {}, current.identity or {})
    worst_cosine, worst_norm = 1.0, 0.0
    for old, new in zip(stored.probes, current.probes, strict=True):
        old_norm, new_norm = _norm(old), _norm(new)
        if old_norm == 0.0 or new_norm == 0.0:
            worst_cosine = min(worst_cosine, 1.0 if old_norm == new_norm else 0.0)
            continue
        dot = sum(value * new.get(index, 0.0) for index, value in old.items())
        worst_cosine = min(worst_cosine, dot / (old_norm * new_norm))
        worst_norm = max(worst_norm, abs(new_norm / old_norm - 1.0))
    if worst_cosine < MIN_PROBE_COSINE:
        return (
            f"their vectors of the same probe texts point elsewhere (cosine {worst_cosine:.3f}; "
            f"one model under any runtime gives over {MIN_PROBE_COSINE})"
        )
    if uses_norm and worst_norm > MAX_NORM_CHANGE:
        return (
            f"their vectors of the same probe texts differ in length by up to "
            f"{worst_norm:.0%}, and this vector's scores depend on lengths"
        )
    return None


_UNCOMPARED = frozenset({"stemmer"})
"""Identity keys recorded for information only (see the module's docstring)."""


def _identity_difference(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    keys = sorted((set(stored) | set(current)) - _UNCOMPARED)
    differing = [k for k in keys if stored.get(k) != current.get(k)]
    if not differing:
        return None
    return "their settings differ: " + ", ".join(
        f"{k} {stored.get(k)!r} recorded, {current.get(k)!r} now" for k in differing
    )


def _norm(probe: Probe) -> float:
    return math.sqrt(sum(v * v for v in probe.values()))


@dataclass(frozen=True, slots=True)
class _Findings:
    entries: dict[str, ModelEntry]
    unrecorded: list[_Branch]


def _compare(
    record: Mapping[str, Any] | None,
    spec: CollectionSpec,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    bm25: Bm25Encoder | None = None,
    *,
    where: str,
    allow_mismatch: bool,
) -> _Findings:
    """Raise ``CollectionMismatchError`` (or warn, if allowed) for every branch whose
    recorded model is not this retriever's; return what the record lacks."""
    entries = _entries(record, where)
    problems: list[str] = []
    differing: list[_Branch] = []
    unrecorded: list[_Branch] = []
    for branch in _branches(spec, dense, sparse, bm25):
        stored = entries.get(branch.vector_name)
        if stored is None:
            unrecorded.append(branch)
            continue
        current = model_entry(branch.encoder, stored.probe_texts)
        difference = _difference(stored, current, uses_norm=branch.uses_norm)
        if difference is not None:
            differing.append(branch)
            problems.append(
                f"its {branch.label} vector {branch.vector_name!r} holds vectors of "
                f"{stored.describe()}, but the {branch.label} encoder is "
                f"{current.describe()}: {difference}"
            )
    if problems:
        message = f"{where[0].upper()}{where[1:]} was written by other models: " + "; ".join(
            problems
        )
        hint = OVERRIDE_HINT
        if any(branch.label == "bm25" for branch in differing):
            hint = f"{BM25_HINT} {hint}"
        if not allow_mismatch:
            raise CollectionMismatchError(f"{message}. Nothing was changed. {hint}")
        warnings.warn(
            f"{message}. Used anyway because allow_model_mismatch=True; results may be wrong.",
            ModelRecordWarning,
            stacklevel=4,
        )
    return _Findings(entries, unrecorded)


def new_record(
    spec: CollectionSpec,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    bm25: Bm25Encoder | None = None,
    *,
    keep: Mapping[str, ModelEntry] | None = None,
) -> dict[str, Any]:
    """The record of a collection written by ``dense``, ``sparse`` and ``bm25`` (entries
    in ``keep`` stay as they are)."""
    entries = dict(keep or {})
    for branch in _branches(spec, dense, sparse, bm25):
        entries.setdefault(branch.vector_name, model_entry(branch.encoder, PROBE_TEXTS))
    return {
        "format": RECORD_FORMAT,
        "vectors": {name: entry.to_json() for name, entry in entries.items()},
    }


def _warn_unrecorded(
    findings: _Findings,
    storage: StorageBackend,
    where: str,
    *,
    recorded_now: bool,
    state: ModelCheckState | None,
) -> None:
    if state is not None:
        if state.warned_unrecorded:
            return
        state.warned_unrecorded = True
    vectors = " and ".join(f"{b.label} vector {b.vector_name!r}" for b in findings.unrecorded)
    models = "; ".join(
        f"{b.label}: {b.encoder.name!r} ({b.encoder.runtime})" for b in findings.unrecorded
    )
    unknown = (
        f"{where[0].upper()}{where[1:]} has no record of the model that wrote its {vectors} "
        "(it was written before hybrid-retriever recorded models, or by other software), so "
        f"nothing checks that this retriever's models ({models}) are the ones its vectors came "
        "from; other models would return wrong results without an error."
    )
    if recorded_now:
        then = (
            " Recorded these models now: from here on other models are refused "
            "(CollectionMismatchError). If they are not the models its earlier vectors came "
            "from, index the documents again into a new collection_name."
        )
    elif storage.keeps_collection_record:
        then = (
            " The next write (add_documents, add_texts or `hybrid-retriever index`) records "
            "the models that write; make sure they are the ones the collection was built with."
        )
    else:
        then = f" This storage ({storage!r}) cannot keep a record."
    warnings.warn(unknown + then, ModelRecordWarning, stacklevel=4)


def check_models(
    storage: StorageBackend,
    spec: CollectionSpec,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    bm25: Bm25Encoder | None = None,
    *,
    allow_mismatch: bool,
    writing: bool,
    state: ModelCheckState | None = None,
) -> None:
    """The one model check of an existing collection, for readers and writers.

    Raises ``CollectionMismatchError`` naming each branch whose recorded model differs
    from this retriever's (a warning instead with ``allow_mismatch``). A collection with
    no record (written before records existed) passes with a ``ModelRecordWarning``
    (once per ``state``); a writer (``writing``) records its own models in it.
    """
    where = _where(storage, spec)
    record = storage.read_collection_record(spec.name)
    findings = _compare(
        record, spec, dense, sparse, bm25, where=where, allow_mismatch=allow_mismatch
    )
    if not findings.unrecorded:
        return
    record_now = writing and storage.keeps_collection_record
    if record_now:
        record = new_record(spec, dense, sparse, bm25, keep=findings.entries)
        record_now = _recorded(storage.write_collection_record, spec.name, record, where)
    _warn_unrecorded(findings, storage, where, recorded_now=record_now, state=state)


async def acheck_models(
    storage: StorageBackend,
    spec: CollectionSpec,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    bm25: Bm25Encoder | None = None,
    *,
    allow_mismatch: bool,
    writing: bool,
    state: ModelCheckState | None = None,
) -> None:
    """Async :func:`check_models`: storage calls on the async client, encoding in a thread."""
    import asyncio

    where = _where(storage, spec)
    record = await storage.aread_collection_record(spec.name)
    findings = await asyncio.to_thread(
        _compare, record, spec, dense, sparse, bm25, where=where, allow_mismatch=allow_mismatch
    )
    if not findings.unrecorded:
        return
    record_now = writing and storage.keeps_collection_record
    if record_now:
        fresh = await asyncio.to_thread(
            new_record, spec, dense, sparse, bm25, keep=findings.entries
        )
        record_now = await _arecorded(storage.awrite_collection_record, spec.name, fresh, where)
    _warn_unrecorded(findings, storage, where, recorded_now=record_now, state=state)


def create_recorded(
    storage: StorageBackend,
    spec: CollectionSpec,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    bm25: Bm25Encoder | None = None,
) -> None:
    """Create the collection with the record of the models that write it, as one step
    (``StorageBackend.create_recorded_collection``). Raises ``CollectionExistsError`` when
    another writer created it first; a record that cannot be written only warns."""
    if not storage.keeps_collection_record:
        storage.create_collection(spec)
        return
    record = new_record(spec, dense, sparse, bm25)
    try:
        storage.create_recorded_collection(spec, record)
    except RecordNotWrittenError as exc:
        _record_failed(_where(storage, spec), exc)


async def acreate_recorded(
    storage: StorageBackend,
    spec: CollectionSpec,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    bm25: Bm25Encoder | None = None,
) -> None:
    """Async :func:`create_recorded`."""
    import asyncio

    if not storage.keeps_collection_record:
        await storage.acreate_collection(spec)
        return
    record = await asyncio.to_thread(new_record, spec, dense, sparse, bm25)
    try:
        await storage.acreate_recorded_collection(spec, record)
    except RecordNotWrittenError as exc:
        _record_failed(_where(storage, spec), exc)


def _where(storage: StorageBackend, spec: CollectionSpec) -> str:
    return f"collection {spec.name!r} in {storage!r}"


def _record_failed(where: str, error: StorageError) -> None:
    """A record that cannot be written costs the check, not the write: say so, go on."""
    warnings.warn(
        f"Could not record the models that write {where}: {error} Until a later write records "
        "them, opening it warns that its models are unchecked.",
        ModelRecordWarning,
        stacklevel=5,
    )


def _recorded(
    write: Callable[[str, Mapping[str, Any]], None],
    collection: str,
    record: Mapping[str, Any],
    where: str,
) -> bool:
    try:
        write(collection, record)
    except StorageError as exc:
        _record_failed(where, exc)
        return False
    return True


async def _arecorded(
    write: Callable[[str, Mapping[str, Any]], Awaitable[None]],
    collection: str,
    record: Mapping[str, Any],
    where: str,
) -> bool:
    try:
        await write(collection, record)
    except StorageError as exc:
        _record_failed(where, exc)
        return False
    return True
