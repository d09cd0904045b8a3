"""The package's exception and warning types.

Every error the package raises on purpose derives from ``HybridRetrieverError``,
so callers can catch one type. Messages say what is wrong and how to fix it.
The ``ValueError`` / ``LookupError`` bases keep generic handlers working.
"""

from __future__ import annotations


class HybridRetrieverError(Exception):
    """Base class of every error raised by hybrid_retriever."""


class InvalidQueryError(HybridRetrieverError, ValueError):
    """The query text cannot be searched (empty, not a string, ...)."""


class InvalidParameterError(HybridRetrieverError, ValueError):
    """A search or indexing parameter is out of range (k, prefetch_k, weights, ...)."""


class InvalidDocumentError(HybridRetrieverError, ValueError):
    """A document cannot be indexed (empty text, unserialisable metadata, bad id)."""


class EmptyDocumentError(InvalidDocumentError):
    """A record has no text to index (an empty document, as some datasets ship)."""


class DuplicateIdError(InvalidDocumentError):
    """Two different documents in one call map to the same point id."""


class CollectionNotFoundError(HybridRetrieverError, LookupError):
    """A read-only operation named a collection that does not exist."""


class CollectionMismatchError(HybridRetrieverError):
    """An existing collection's vectors do not match the retriever's encoders."""


class ModelLoadError(HybridRetrieverError):
    """A model could not be found or is not of the expected kind."""


class StorageError(HybridRetrieverError):
    """The storage backend could not be reached or refused an operation."""


class HybridRetrieverWarning(UserWarning):
    """Base class of every warning hybrid_retriever gives: one type to filter or to log."""


class ModelRecordWarning(HybridRetrieverWarning):
    """A collection's models could not be checked (no record), or were let through by
    ``allow_model_mismatch=True``."""


class TruncationWarning(HybridRetrieverWarning):
    """Some indexed documents were longer than an encoder reads, and were cut."""


class StoredCalibrationWarning(HybridRetrieverWarning):
    """A collection carries branch weights from the removed calibration, now ignored."""


class ModelCacheWarning(HybridRetrieverWarning):
    """The ONNX export cache could not be used as is (unwritable, full, or damaged)."""


class IncompleteCopyError(StorageError):
    """The collection is a copy that has not finished (``move``): run the copy again."""


class TargetNotEmptyError(HybridRetrieverError):
    """A copy's target collection exists and holds other data; nothing was written."""


class CopyVerificationError(HybridRetrieverError):
    """A finished copy does not match its source (counts or searches differ)."""
