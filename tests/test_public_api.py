import subprocess
import sys

import hybrid_retriever


def test_all_is_pinned() -> None:
    assert sorted(hybrid_retriever.__all__) == [
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
    for name in hybrid_retriever.__all__:
        assert hasattr(hybrid_retriever, name)


def test_import_does_not_load_heavy_modules() -> None:
    code = (
        "import sys, hybrid_retriever\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'qdrant_client',"
        " 'qdrant_edge')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_errors_share_one_base() -> None:
    for name in hybrid_retriever.__all__:
        obj = getattr(hybrid_retriever, name)
        if isinstance(obj, type) and issubclass(obj, Warning):
            assert issubclass(obj, hybrid_retriever.HybridRetrieverWarning), name
        elif isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, hybrid_retriever.HybridRetrieverError), name
