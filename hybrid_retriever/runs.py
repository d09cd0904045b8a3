"""LangChain run bookkeeping for ``batch`` / ``abatch`` done in one pass.

``BaseRetriever.invoke`` opens a callback run per query around
``_get_relevant_documents``. The retriever's batch methods search all queries
together, so they open the same runs themselves: one per query, each ended with
its own documents or error, so tracing and callbacks see what ``invoke`` shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.runnables.config import RunnableConfig, ensure_config

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever


def _configure(
    retriever: BaseRetriever, config: RunnableConfig | None, kwargs: dict[str, Any]
) -> tuple[RunnableConfig, dict[str, Any]]:
    config = ensure_config(config)
    options: dict[str, Any] = {
        "verbose": kwargs.get("verbose", False),
        "inheritable_tags": config.get("tags"),
        "local_tags": retriever.tags,
        "inheritable_metadata": {
            **(config.get("metadata") or {}),
            **retriever._get_ls_params(**kwargs),
        },
        "local_metadata": retriever.metadata,
    }
    return config, options


def start_runs(
    retriever: BaseRetriever,
    queries: Sequence[Any],
    configs: Sequence[RunnableConfig],
    kwargs: dict[str, Any],
) -> list[CallbackManagerForRetrieverRun]:
    runs = []
    for query, given in zip(queries, configs, strict=True):
        config, options = _configure(retriever, given, kwargs)
        manager = CallbackManager.configure(config.get("callbacks"), None, **options)
        runs.append(
            manager.on_retriever_start(
                None, query, name=config.get("run_name") or retriever.get_name()
            )
        )
    return runs


async def astart_runs(
    retriever: BaseRetriever,
    queries: Sequence[Any],
    configs: Sequence[RunnableConfig],
    kwargs: dict[str, Any],
) -> list[AsyncCallbackManagerForRetrieverRun]:
    runs = []
    for query, given in zip(queries, configs, strict=True):
        config, options = _configure(retriever, given, kwargs)
        manager = AsyncCallbackManager.configure(config.get("callbacks"), None, **options)
        runs.append(
            await manager.on_retriever_start(
                None, query, name=config.get("run_name") or retriever.get_name()
            )
        )
    return runs


def finish_runs(
    runs: Sequence[CallbackManagerForRetrieverRun],
    outcomes: Sequence[list[Document] | Exception],
    *,
    return_exceptions: bool,
) -> list[Any]:
    """End each run with its outcome; raise the first error unless ``return_exceptions``."""
    for run, outcome in zip(runs, outcomes, strict=True):
        if isinstance(outcome, Exception):
            run.on_retriever_error(outcome)
        else:
            run.on_retriever_end(outcome)
    return _results(outcomes, return_exceptions=return_exceptions)


async def afinish_runs(
    runs: Sequence[AsyncCallbackManagerForRetrieverRun],
    outcomes: Sequence[list[Document] | Exception],
    *,
    return_exceptions: bool,
) -> list[Any]:
    for run, outcome in zip(runs, outcomes, strict=True):
        if isinstance(outcome, Exception):
            await run.on_retriever_error(outcome)
        else:
            await run.on_retriever_end(outcome)
    return _results(outcomes, return_exceptions=return_exceptions)


def _results(
    outcomes: Sequence[list[Document] | Exception], *, return_exceptions: bool
) -> list[Any]:
    if not return_exceptions:
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
    return list(outcomes)
