"""Hybrid SPLADE + dense retrieval for LangChain on Qdrant, with robust fusion of the two."""

from hybrid_retriever.collection import Distance
from hybrid_retriever.encoders.backend import EncoderBackend
from hybrid_retriever.encoders.base import DenseEncoder, SparseEncoder
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.encoders.dense import LangChainEmbeddingsEncoder, SentenceTransformerEncoder
from hybrid_retriever.encoders.precision import Precision
from hybrid_retriever.encoders.splade import SpladeEncoder
from hybrid_retriever.errors import (
    CollectionMismatchError,
    CollectionNotFoundError,
    DuplicateIdError,
    HybridRetrieverError,
    HybridRetrieverWarning,
    InvalidDocumentError,
    InvalidParameterError,
    InvalidQueryError,
    ModelCacheWarning,
    ModelLoadError,
    ModelRecordWarning,
    StorageError,
    StoredCalibrationWarning,
    TruncationWarning,
)
from hybrid_retriever.fusion.methods import FusionMethod
from hybrid_retriever.precomputed import EmbeddedDocument
from hybrid_retriever.retriever import HybridRetriever
from hybrid_retriever.storage.base import StorageBackend
from hybrid_retriever.storage.connect import Engine
from hybrid_retriever.storage.edge import EdgeStorage
from hybrid_retriever.storage.qdrant import ClusterOptions, QdrantClientStorage
from hybrid_retriever.text_splitter import HybridTextSplitter
from hybrid_retriever.vector_storage import Quantization, VectorStorage
from hybrid_retriever.vectors import SparseVector
from hybrid_retriever.vectorstore import HybridVectorStore

__all__ = [
    "Bm25Encoder",
    "ClusterOptions",
    "CollectionMismatchError",
    "CollectionNotFoundError",
    "DenseEncoder",
    "Distance",
    "DuplicateIdError",
    "EdgeStorage",
    "EmbeddedDocument",
    "EncoderBackend",
    "Engine",
    "FusionMethod",
    "HybridRetriever",
    "HybridRetrieverError",
    "HybridRetrieverWarning",
    "HybridTextSplitter",
    "HybridVectorStore",
    "InvalidDocumentError",
    "InvalidParameterError",
    "InvalidQueryError",
    "LangChainEmbeddingsEncoder",
    "ModelCacheWarning",
    "ModelLoadError",
    "ModelRecordWarning",
    "Precision",
    "QdrantClientStorage",
    "Quantization",
    "SentenceTransformerEncoder",
    "SparseEncoder",
    "SparseVector",
    "SpladeEncoder",
    "StorageBackend",
    "StorageError",
    "StoredCalibrationWarning",
    "TruncationWarning",
    "VectorStorage",
]
