"""fp32 linears through oneDNN (:mod:`fgrpo.kernels.onednn`) against ``F.linear``.

Outputs and every gradient (input, weight, bias; 2-D and 3-D inputs; a frozen weight) agree
with torch's default kernel to fp32 rounding, and a whole model switched to
:class:`OneDNNLinear` (LoRA adapters included) gives the same loss and gradients as before
the switch, with the same state dict. Where oneDNN is missing the switch is a no-op.
"""

from __future__ import annotations

import pytest
import torch

from fgrpo.kernels import onednn
from fgrpo.models.loading import add_lora
from fgrpo.models.tiny import build_tiny_llama

pytestmark = pytest.mark.skipif(not onednn.available(), reason="this torch has no oneDNN fp32 linear")
torch.set_num_threads(1)


@pytest.mark.parametrize("shape", [(7, 12), (3, 5, 12)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_and_its_gradients_equal_f_linear(shape: tuple[int, ...], bias: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = torch.randn(9, 12, generator=g, requires_grad=True)
    b = torch.randn(9, generator=g, requires_grad=True) if bias else None
    up = torch.randn(*shape[:-1], 9, generator=g)
    grads = []
    for f in (onednn.linear, torch.nn.functional.linear):
        y = f(x, w, b)
        inputs = [x, w] + ([b] if bias else [])
        grads.append((y, torch.autograd.grad((y * up).sum(), inputs)))
    (y1, g1), (y2, g2) = grads
    assert y1.shape == y2.shape
    assert torch.allclose(y1, y2, rtol=1e-5, atol=1e-5)
    for a, c in zip(g1, g2, strict=True):
        assert torch.allclose(a, c, rtol=1e-5, atol=1e-5)


def test_frozen_weight_gets_no_gradient() -> None:
    x = torch.randn(4, 6, requires_grad=True)
    w = torch.randn(3, 6)
    onednn.linear(x, w).sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, w.sum(0).expand(4, 6), atol=1e-5)


def test_switched_model_same_loss_gradients_and_state_dict() -> None:
    ids = torch.randint(3, 90, (2, 10), generator=torch.Generator().manual_seed(1))
    results = []
    for switch in (False, True):
        torch.manual_seed(7)  # LoRA's A matrices draw from the global generator
        model = add_lora(build_tiny_llama(100, hidden_size=32, num_layers=2, seed=5), 4, 8, 0.0, "all-linear")
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(2))
        if switch:
            n = onednn.use_onednn_linears(model)
            assert n == sum(1 for m in model.modules() if isinstance(m, onednn.OneDNNLinear)) > 0
            assert not any(type(m) is torch.nn.Linear for m in model.modules())
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
        results.append((loss.item(), grads, sorted(model.state_dict())))
    (l0, g0, s0), (l1, g1, s1) = results
    assert s0 == s1
    assert abs(l0 - l1) < 1e-5
    assert g0.keys() == g1.keys() and len(g0) > 0
    for k in g0:
        assert torch.allclose(g0[k], g1[k], rtol=1e-4, atol=1e-6), k
