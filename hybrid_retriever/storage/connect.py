"""Choosing and opening a storage backend from the arguments a user passes.

Where data goes when no ``client=``, ``url=``, ``location=`` or ``path=`` is given is
one rule for Python and the command line (:func:`default_location`):
``$HYBRID_RETRIEVER_PATH`` when set; otherwise Python keeps the data in a temporary
folder deleted on ``close()`` (or at exit), and the ``hybrid-retriever`` command in
``./qdrant_data``, so that ``index`` then ``search`` find the same collection.

The rules, in order:

* a ready ``client=`` / ``async_client=`` is used through qdrant-client;
* ``url=`` (or an http(s) ``location=``) is a Qdrant server or cluster, through qdrant-client;
* otherwise the data is embedded in the process: Qdrant Edge by default, in ``path=``
  or, with no path (or ``location=":memory:"``), in a temporary folder. In a ``path``
  the engine is chosen per collection: the one that holds the named collection opens
  it (Edge keeps ``path/<name>/edge_config.json``, qdrant-client ``meta.json`` and
  ``path/collection/<name>/``), so one folder can hold both kinds. A new collection
  goes to qdrant-client only in a folder that holds qdrant-client collections and no
  Edge ones, so existing data keeps working. ``engine=`` overrides the choice.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_retriever.errors import InvalidParameterError, StorageError
from hybrid_retriever.storage.base import StorageBackend

if TYPE_CHECKING:
    from hybrid_retriever.storage.qdrant import ClusterOptions

CONNECTION_ARGUMENTS = (
    "location",
    "path",
    "url",
    "api_key",
    "prefer_grpc",
    "timeout",
    "engine",
    "client",
    "async_client",
    "cluster",
    "shard_key",
    "read_consistency",
)


LOCATION_ENV = "HYBRID_RETRIEVER_PATH"
"""Environment variable: the folder where embedded data goes when no location is given."""
COMMAND_LINE_PATH = Path("./qdrant_data")
"""Where the command line keeps its data when no location is given and the variable is unset."""


def default_location(*, command_line: bool = False) -> Path | None:
    """The folder embedded data goes to when the caller names no location.

    ``$HYBRID_RETRIEVER_PATH`` when set, for Python and the command line alike. Otherwise
    the command line uses ``./qdrant_data`` (each command is its own process: ``search``
    must find what ``index`` wrote) and Python None: a temporary folder, deleted on
    ``close()`` or at exit, so that ``from_texts`` in a notebook leaves nothing behind.
    """
    from_env = os.environ.get(LOCATION_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return COMMAND_LINE_PATH if command_line else None


def collection_names(storage: StorageBackend) -> list[str] | None:
    """The collections at ``storage``'s location, sorted; None when it cannot be listed
    (an unreachable server). Reads only: a missing folder holds none."""
    from hybrid_retriever.storage.edge import EdgeStorage

    try:
        if isinstance(storage, EdgeStorage):
            return sorted(embedded_collections(storage.root))
        client = getattr(storage, "client", None)
        if client is None:
            return None
        return sorted(c.name for c in client.get_collections().collections)
    except Exception:
        return None


def embedded_collections(path: Path) -> set[str]:
    """The collections an embedded folder holds, of either engine (Edge keeps
    ``<name>/edge_config.json``, qdrant-client ``collection/<name>/``)."""
    from hybrid_retriever.storage.edge import CONFIG_FILE

    if not path.is_dir():
        return set()
    names = {child.name for child in path.iterdir() if (child / CONFIG_FILE).is_file()}
    if (path / "meta.json").is_file() and (path / "collection").is_dir():
        names.update(child.name for child in (path / "collection").iterdir() if child.is_dir())
    return names


def missing_collection_message(storage: StorageBackend, collection: str) -> str:
    """What ``CollectionNotFoundError`` says: where it looked, what is there, the fix (a
    Python call, or under the command line the ``index`` command)."""
    from hybrid_retriever.advice import advise

    names = collection_names(storage)
    if names is None:
        there = ""
    elif names:
        there = f" Collections there: {', '.join(names)}."
    else:
        there = " It holds no collection."
    fix = advise(
        python="Index documents first (add_documents or HybridRetriever.from_documents), "
        "or check collection_name and the location.",
        cli=f"Index it first with 'hybrid-retriever index SOURCE --collection {collection}' "
        "(with the same --path or --url), or pass --collection with an existing name.",
    )
    return f"Collection {collection!r} does not exist in {storage!r}.{there} {fix}"


class Engine(str, Enum):
    """Which engine holds an embedded collection."""

    EDGE = "edge"
    """Qdrant Edge: Qdrant's Rust engine in-process (the default)."""
    QDRANT_CLIENT = "qdrant-client"
    """qdrant-client's pure-Python embedded mode: fine for tests, slow past ~20k points."""


def open_storage(
    *,
    location: str | None = None,
    path: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    prefer_grpc: bool = False,
    timeout: int | None = None,
    engine: Engine | str | None = None,
    client: Any = None,
    async_client: Any = None,
    cluster: ClusterOptions | None = None,
    shard_key: str | int | None = None,
    read_consistency: int | str | None = None,
    collection: str | None = None,
) -> StorageBackend:
    """The storage backend the arguments describe (see the module docstring).

    ``collection`` is the collection the caller will use; in a ``path`` it decides the
    engine. None: the folder's engine (as for a new collection).
    """
    from hybrid_retriever.storage.qdrant import QdrantClientStorage

    distributed: dict[str, Any] = {
        "cluster": cluster,
        "shard_key": shard_key,
        "read_consistency": read_consistency,
    }
    chosen = _engine(engine)
    if client is None and async_client is None and location is None and url is None:
        path = path if path is not None else default_location()
    given = [n for n, v in (("location", location), ("path", path), ("url", url)) if v is not None]
    if len(given) > 1:
        raise InvalidParameterError(
            f"Pass only one of location=, path= or url= (got {', '.join(given)})."
        )
    if client is not None or async_client is not None:
        if given or api_key is not None:
            raise InvalidParameterError(
                "Pass either a ready client / async_client or connection arguments "
                f"({', '.join([*given, *(['api_key'] if api_key else [])])}), not both."
            )
        _refuse_edge(chosen, "a qdrant-client client was passed")
        return QdrantClientStorage(client, async_client, **distributed)
    remote = url is not None or (location is not None and location != ":memory:")
    if remote:
        _refuse_edge(chosen, "url= names a Qdrant server")
        return QdrantClientStorage.connect(
            location=location,
            url=url,
            api_key=api_key,
            prefer_grpc=prefer_grpc,
            timeout=timeout,
            **distributed,
        )
    if chosen is None:
        chosen = Engine.EDGE if path is None else detect_engine(Path(path), collection)
    if cluster is not None or shard_key is not None:
        raise InvalidParameterError(
            "cluster= and shard_key= describe a Qdrant server or cluster; an embedded "
            "collection is a single local shard. Connect with url= to use them."
        )
    if chosen is Engine.QDRANT_CLIENT:
        return QdrantClientStorage.connect(
            location=None if path is not None else ":memory:",
            path=None if path is None else str(path),
        )
    from hybrid_retriever.storage.edge import EdgeStorage

    return EdgeStorage(path)


def _engine(engine: Engine | str | None) -> Engine | None:
    if engine is None or isinstance(engine, Engine):
        return engine
    try:
        return Engine(engine)
    except ValueError:
        raise InvalidParameterError(
            f"Unknown engine {engine!r}; choose one of {[e.value for e in Engine]}."
        ) from None


def _refuse_edge(engine: Engine | None, why: str) -> None:
    if engine is Engine.EDGE:
        raise InvalidParameterError(
            f"engine='edge' runs in this process and cannot be used here: {why}."
        )


def detect_engine(path: Path, collection: str | None) -> Engine:
    """The engine that holds ``collection`` in ``path``; for a new one, the folder's engine.

    Decided per collection, not per folder: a qdrant-client collection written beside
    Edge ones must not hide them (opening one would say it does not exist).
    """
    client_collections = _qdrant_client_collections(path)
    if collection is not None:
        in_edge = _is_edge_collection(path / collection)
        in_client = client_collections is not None and collection in client_collections
        if in_edge and in_client:
            raise StorageError(
                f"The folder {str(path)!r} holds a collection {collection!r} of both engines: "
                f"Qdrant Edge in {str(path / collection)!r} and qdrant-client in "
                f"{str(path / 'collection' / collection)!r}. Pass engine='edge' or "
                "engine='qdrant-client' to say which one to open."
            )
        if in_edge:
            return Engine.EDGE
        if in_client:
            return Engine.QDRANT_CLIENT
    holds_edge = path.is_dir() and any(_is_edge_collection(child) for child in path.iterdir())
    is_client_folder = client_collections is not None
    return Engine.QDRANT_CLIENT if is_client_folder and not holds_edge else Engine.EDGE


def _is_edge_collection(folder: Path) -> bool:
    """An Edge shard keeps its vector configuration in ``<collection>/edge_config.json``."""
    from hybrid_retriever.storage.edge import CONFIG_FILE

    return (folder / CONFIG_FILE).is_file()


def _qdrant_client_collections(path: Path) -> set[str] | None:
    """The collections qdrant-client's embedded mode lists in ``meta.json``; None when
    ``path`` is not such a database (it keeps ``meta.json`` and ``collection/``)."""
    meta = path / "meta.json"
    if not (meta.is_file() and (path / "collection").is_dir()):
        return None
    try:
        collections = json.loads(meta.read_text(encoding="utf-8")).get("collections") or {}
    except (OSError, ValueError, AttributeError):
        # Unreadable: qdrant-client will report it; its collection folders still say what it holds.
        return {child.name for child in (path / "collection").iterdir() if child.is_dir()}
    return set(collections)
