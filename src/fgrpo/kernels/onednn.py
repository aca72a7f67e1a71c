"""fp32 linear layers through oneDNN on CPU: prepacked for decoding, and with autograd for training.

Why by hand: torch's CPU matmul is MKL's sgemm, which on AMD CPUs runs its AVX2 code
(≈ 93 GFLOP/s on one core of the reference EPYC); oneDNN, shipped inside the same torch,
uses AVX-512 there (≈ 205-225 GFLOP/s, ``benchmarks/decode_profile.py``), in the forward
and in both backward products. torch only routes fp32 matmuls to oneDNN for reduced
precision (bf16/tf32), so these few lines call ``torch.ops.mkldnn._linear_pointwise``, the
op torch's own compiler emits for CPU linears. Results differ from MKL's by fp32 rounding
(≈ 1e-6 relative); tests/test_onednn.py checks outputs and gradients against ``F.linear``.

Everywhere else (GPU, other dtypes, a torch without the op) the plain ``F.linear`` runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

Linear = Callable[[torch.Tensor], torch.Tensor]


@functools.cache
def available() -> bool:
    """Whether this torch build runs oneDNN's fp32 linear on CPU."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        w = torch.ones(2, 3)
        out = torch.ops.mkldnn._linear_pointwise(torch.ones(1, 3), w, None, "none", [], "")
        packed = torch.ops.mkldnn._reorder_linear_weight(w, 1)
        out2 = torch.ops.mkldnn._linear_pointwise(torch.ones(1, 3), packed, None, "none", [], "")
        return bool(torch.allclose(out, torch.full((1, 2), 3.0)) and torch.allclose(out2, out))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


def _eligible(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and weight.dim() == 2 and x.dim() >= 1 and x.layout == torch.strided and available())


def _mm_t(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b.T (+ bias)`` for 2-D a [M, K], b [N, K]."""
    return torch.ops.mkldnn._linear_pointwise(a.contiguous(), b.contiguous(), bias, "none", [], "")


def packed_linear(weight: torch.Tensor, rows: int) -> Linear:
    """``x -> x @ weight.T`` with the weight prepacked by oneDNN for ``rows`` rows (a decode
    step's few rows run 2-3x faster packed); ``F.linear`` where oneDNN does not apply."""
    w = weight.detach()
    if not _eligible(w, w):
        return lambda x: torch.nn.functional.linear(x, w)
    packed = torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), rows)
    op = torch.ops.mkldnn._linear_pointwise
    return lambda x: op(x, packed, None, "none", [], "")


class _LinearFn(torch.autograd.Function):
    """y = x Wᵀ + b, dx = dy W, dW = dyᵀ x, db = Σ dy: each product one oneDNN call."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = _mm_t(x.reshape(-1, x.shape[-1]), weight, bias)
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _mm_t(g, weight.t()).view(x.shape)
        if ctx.needs_input_grad[1]:
            gw = _mm_t(g.t(), x.reshape(-1, x.shape[-1]).t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` through oneDNN where it applies (CPU, fp32), with gradients; else ``F.linear``."""
    if _eligible(x, weight) and x.numel() > 0:
        return _LinearFn.apply(x, weight, bias)
    return torch.nn.functional.linear(x, weight, bias)


class OneDNNLinear(torch.nn.Linear):
    """``nn.Linear`` whose forward is :func:`linear`: same parameters, state dict and repr."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def use_onednn_linears(model: torch.nn.Module) -> int:
    """Switch every plain ``nn.Linear`` of the model (a PEFT model's base layers and adapters
    included) to :class:`OneDNNLinear`, in place; the number switched (0 where oneDNN is
    unavailable). Call it after adding LoRA, whose adapter layers are new ``nn.Linear``s."""
    if not available():
        return 0
    count = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.__class__ = OneDNNLinear
            count += 1
    return count
