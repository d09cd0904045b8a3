"""Chunked SPLADE max pooling against the textbook formula, on small random tensors."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hybrid_retriever.encoders import splade
from hybrid_retriever.encoders.splade import _screen_margin, splade_max_pool
from hybrid_retriever.errors import InvalidParameterError

VOCAB, HIDDEN = 300, 24


def reference(
    hidden: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    activation: str = "relu",
) -> torch.Tensor:
    """SpladePooling's own recipe: full logits, masked, log1p(relu(.)), max over tokens."""
    logits = hidden @ weight.t() + bias
    transformed = torch.log1p(torch.relu(logits * mask.unsqueeze(-1)))
    if activation == "log1p_relu":
        transformed = torch.log1p(transformed)
    return transformed.amax(dim=1)


def batch(seed: int, lengths: list[int], *, left_padding: bool = False) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    hidden = torch.randn(len(lengths), width, HIDDEN, generator=generator)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        if left_padding:
            mask[row, width - length :] = 1
        else:
            mask[row, :length] = 1
    # Scaled so that a fair share of the logits is positive, as in a real SPLADE head.
    weight = torch.randn(VOCAB, HIDDEN, generator=generator) * 0.4
    bias = torch.randn(VOCAB, generator=generator) - 2.0
    return hidden, mask, weight, bias


@pytest.mark.parametrize("chunk_rows", [16, 48, 1000])
@pytest.mark.parametrize("activation", ["relu", "log1p_relu"])
@pytest.mark.parametrize("left_padding", [False, True])
def test_equals_the_full_logits_formula(
    chunk_rows: int, activation: str, left_padding: bool
) -> None:
    # Widths below and above chunk_rows take the two block layouts (several documents
    # per block, one document over several blocks); 37 is not a multiple of 16.
    hidden, mask, weight, bias = batch(0, [37, 1, 20, 37, 5], left_padding=left_padding)
    expected = reference(hidden, mask, weight, bias, activation)
    pooled = splade_max_pool(
        hidden, mask, weight, bias, activation=activation, chunk_rows=chunk_rows
    )
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-6)
    assert (pooled > 0).any() and (pooled == 0).any()


def test_a_row_without_real_tokens_pools_to_zero() -> None:
    hidden, mask, weight, bias = batch(1, [9, 4])
    mask[1] = 0
    pooled = splade_max_pool(hidden, mask, weight, bias, chunk_rows=16)
    assert torch.count_nonzero(pooled[1]) == 0
    torch.testing.assert_close(pooled[0], reference(hidden, mask, weight, bias)[0])


def test_without_bias() -> None:
    hidden, mask, weight, _ = batch(2, [7, 12])
    pooled = splade_max_pool(hidden, mask, weight, None, chunk_rows=16)
    torch.testing.assert_close(pooled, reference(hidden, mask, weight, torch.zeros(VOCAB)))


@pytest.mark.parametrize("chunk_rows", [16, 1000])
def test_bf16_screening_gives_the_fp32_result(chunk_rows: int) -> None:
    # Screening only decides which terms to recompute in fp32, so the output is the
    # fp32 one; plain bf16 would be off by ~1e-2 here.
    hidden, mask, weight, bias = batch(3, [40, 3, 25, 33])
    expected = splade_max_pool(hidden, mask, weight, bias, chunk_rows=chunk_rows)
    screened = splade_max_pool(
        hidden,
        mask,
        weight,
        bias,
        chunk_rows=chunk_rows,
        screen_weight=weight.to(torch.bfloat16),
    )
    torch.testing.assert_close(screened, expected, rtol=1e-6, atol=1e-6)
    plain_bf16 = reference(hidden.bfloat16().float(), mask, weight.bfloat16().float(), bias)
    assert not torch.allclose(plain_bf16, expected, rtol=1e-6, atol=1e-6)


def test_screen_margin_bounds_the_bf16_error() -> None:
    generator = torch.Generator().manual_seed(4)
    hidden = torch.randn(2000, 128, generator=generator) * 5
    weight = torch.randn(500, 128, generator=generator)
    exact = hidden.double() @ weight.double().t()
    rounded = (hidden.bfloat16() @ weight.bfloat16().t()).double()
    margin = _screen_margin(
        hidden.norm(dim=1, keepdim=True), weight.norm(dim=1), 128, torch.bfloat16
    )
    error = (rounded - exact).abs()
    assert (error <= margin.double()).all()
    # ... and is not uselessly loose: within ~two orders of magnitude of the worst error.
    assert (margin / error.clamp_min(1e-30)).min() < 100


class _RecordMatmuls(TorchDispatchMode):
    """Records the size in bytes of every matrix product's output."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.mm.default, torch.ops.aten.mm.out):
            self.sizes.append(out.numel() * out.element_size())
        return out


@pytest.mark.parametrize("screen", [False, True])
def test_logits_blocks_stay_within_chunk_rows(screen: bool) -> None:
    # chunk_rows is counted in the screening dtype; the fp32 refinement keeps to the
    # same number of bytes.
    hidden, mask, weight, bias = batch(5, [200, 3, 150])
    screen_weight = weight.to(torch.bfloat16) if screen else None
    budget = VOCAB * 32 * (2 if screen else 4)
    with _RecordMatmuls() as recorder:
        pooled = splade_max_pool(
            hidden, mask, weight, bias, chunk_rows=32, screen_weight=screen_weight
        )
    assert recorder.sizes and max(recorder.sizes) <= budget
    torch.testing.assert_close(pooled, reference(hidden, mask, weight, bias))


def test_chunk_rows_fit_the_byte_budget() -> None:
    for vocab in (30522, 250002):
        for element_size in (2, 4):
            rows = splade._chunk_rows(vocab, element_size)
            assert rows % 16 == 0
            assert rows * vocab * element_size <= splade.LOGITS_CHUNK_BYTES


def test_rejects_a_non_positive_chunk() -> None:
    hidden, mask, weight, bias = batch(6, [3])
    with pytest.raises(InvalidParameterError, match="chunk_rows"):
        splade_max_pool(hidden, mask, weight, bias, chunk_rows=0)
