"""Cutting a plain SPLADE model (BERT masked-LM + max pooling) before its vocabulary
projection.

Both the PyTorch encoder (chunked pooling, ``splade.py``) and the ONNX export
(``onnx_export.py``) need to know whether a model has the plain shape and where to cut
it; it lives here, below both, so that the export does not import an encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class MaskedLmSplit:
    """A SPLADE model cut just before its vocabulary projection.

    ``hidden`` maps the tokenized features to the MLM head's transformed hidden
    states [batch, tokens, hidden]; ``decoder`` is the hidden -> vocab projection
    that ``splade.splade_max_pool`` runs in chunks; ``activation`` is the model's own
    ``SpladePooling`` activation.
    """

    hidden: Callable[[Mapping[str, Any]], torch.Tensor]
    decoder: torch.nn.Linear
    activation: str


def masked_lm_split(model: Any) -> MaskedLmSplit | None:
    """Cut ``model`` for chunked pooling, or ``None`` when its shape is not the plain one.

    The plain shape is what ``SparseEncoder("naver/splade-...")`` loads for BERT
    checkpoints: a text ``Transformer`` running ``BertForMaskedLM.forward`` for its
    logits, then ``SpladePooling`` with max pooling, and nothing else (no router,
    no extra modules, no device map, no flash-attention unpadding, no distributed
    inference). Anything else gets sentence-transformers' own path, which handles
    every shape, including sum pooling (SPLADE v1).
    """
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling
    from transformers import BertForMaskedLM

    if len(model) != 2:
        return None
    transformer, pooling = model[0], model[1]
    if not isinstance(transformer, Transformer) or not isinstance(pooling, SpladePooling):
        return None
    if pooling.pooling_strategy != "max" or pooling.activation_function not in _ACTIVATIONS:
        return None
    text_config = transformer.modality_config.get("text")
    if (
        set(transformer.modality_config) != {"text"}
        or text_config is None
        or text_config.get("method") != "forward"
        or text_config.get("method_output_name") != "logits"
        or getattr(transformer, "can_flatten_inputs", False)
        or getattr(model, "_placement_is_delegated", False)
        or getattr(model, "_distributed_inference", None) is not None
    ):
        return None
    mlm = transformer.auto_model
    if type(mlm) is not BertForMaskedLM:
        return None
    transform = mlm.cls.predictions.transform

    def hidden(features: Mapping[str, Any]) -> torch.Tensor:
        inputs = {key: features[key] for key in _BERT_INPUTS if key in features}
        states = mlm.bert(**inputs, return_dict=True).last_hidden_state
        result: torch.Tensor = transform(states)
        return result

    return MaskedLmSplit(
        hidden=hidden, decoder=mlm.cls.predictions.decoder, activation=pooling.activation_function
    )


_ACTIVATIONS = ("relu", "log1p_relu")
_BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
