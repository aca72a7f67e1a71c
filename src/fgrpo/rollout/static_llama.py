"""Decode steps of a Llama-family model over a preallocated, prompt-shared key/value cache.

Written by hand because transformers' ``DynamicCache`` grows by ``torch.cat`` on every step
(the whole cache of every layer copied: 42% of a SmolLM2 decode step of 8 rows on the
reference CPU, ``benchmarks/decode_profile.py --profile``), and because after
``batch_repeat_interleave`` its attention reads each prompt's keys once per rollout. Here:

* each prompt's keys and values stay ``[P, H_kv, L, D]``, read once per group: the G rows'
  queries are the rows of one matmul against them (the group shares its prompt);
* the generated tokens' keys and values go into a preallocated ``[n, H_kv, T, D]`` buffer,
  written in place, one column per step;
* q/k/v are one matmul and gate/up another (LoRA deltas merged in), so a layer is 4
  matmuls instead of 7; on CPU in fp32 they run through oneDNN with prepacked weights
  (:func:`_linear`), repacked only after the parameters change;
* every row stays in the batch until the last one stops (a finished row's logits are
  computed and ignored), so no cache row is ever copied.

The prefill runs through the same packed weights (SDPA over the prompt, causal, padding
masked) and keeps each prompt's keys and values. The math is the model's in another order (fused
matmuls, the softmax over prompt and generated keys taken jointly from two score blocks),
so logits agree with ``model(...)``'s to ~1e-6, not bit for bit; tests/test_rollout_static.py
checks logits, completions for a fixed seed, and the fallback.

Only plain Llama blocks qualify (:func:`supports`): RMSNorm, SiLU MLP, rotary embeddings
(any rope type transformers computes), no biases, no tensor-parallel split; a PEFT model
qualifies when its adapters are plain LoRA. Anything else decodes through ``model(...)``.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from fgrpo.kernels.onednn import packed_linear

SUPPORTED_MODEL_TYPES = frozenset({"llama"})
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


def _base_lm(model: Any) -> Any:
    """The causal LM under a PEFT wrapper (or the model itself)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _weight(linear: Any) -> torch.Tensor | None:
    """The weight a linear layer applies: a PEFT LoRA layer's base weight plus its active
    adapters' deltas; None for a layer this module cannot read (biases, DoRA, other adapters)."""
    if getattr(linear, "bias", None) is not None:
        return None
    base = getattr(linear, "base_layer", None)
    if base is None:
        w = getattr(linear, "weight", None)
        return w if isinstance(w, torch.Tensor) and w.dim() == 2 else None
    if getattr(base, "bias", None) is not None or not hasattr(linear, "get_delta_weight"):
        return None
    w = base.weight
    if getattr(linear, "merged", False) or getattr(linear, "disable_adapters", False):
        return w
    for name in getattr(linear, "active_adapters", []):
        if name not in getattr(linear, "lora_A", {}):
            continue
        if getattr(linear, "use_dora", {}).get(name, False):
            return None
        w = w + linear.get_delta_weight(name)
    return w


def supports(model: Any) -> bool:
    """Whether :class:`LlamaDecoder` can decode this model exactly as its forward would."""
    lm = _base_lm(model)
    cfg = getattr(lm, "config", None)
    inner = getattr(lm, "model", None)
    if cfg is None or inner is None or getattr(cfg, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or (getattr(cfg, "pretraining_tp", 1) or 1) != 1:
        return False
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return False
    try:
        layers = list(inner.layers)
        needed = [getattr(b.self_attn, p) for b in layers for p in PROJECTIONS]
        needed += [getattr(b.mlp, p) for b in layers for p in MLP]
        if not all(hasattr(inner, a) for a in ("embed_tokens", "norm", "rotary_emb")):
            return False
    except AttributeError:
        return False
    head = lm.get_output_embeddings()
    return all(_weight(m) is not None for m in needed) and head is not None and _weight(head) is not None


# model -> (its parameters' versions, the packed weights): rebuilt only after an update
_PACKED: weakref.WeakKeyDictionary[Any, tuple[tuple[tuple[int, int], ...], dict[str, Any]]] = weakref.WeakKeyDictionary()


def _packed(model: Any, rows: int) -> dict[str, Any]:
    """The model's fused, packed projections, cached on the model until a parameter changes
    (the optimizer step bumps its version), so a rollout after each update repacks once."""
    versions = tuple((p.data_ptr(), p._version) for p in model.parameters())
    hit = _PACKED.get(model)
    if hit is not None and hit[0] == versions:
        return hit[1]
    lm = _base_lm(model)
    layers = []
    for block in lm.model.layers:
        att, mlp = block.self_attn, block.mlp
        layers.append({
            "qkv": packed_linear(torch.cat([_weight(att.q_proj), _weight(att.k_proj), _weight(att.v_proj)]), rows),
            "o": packed_linear(_weight(att.o_proj), rows),
            "gate_up": packed_linear(torch.cat([_weight(mlp.gate_proj), _weight(mlp.up_proj)]), rows),
            "down": packed_linear(_weight(mlp.down_proj), rows),
        })
    weights = {"layers": layers, "head": packed_linear(_weight(lm.get_output_embeddings()), rows)}
    _PACKED[model] = (versions, weights)
    return weights


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm: in fp32, scaled by the weight in the input's dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of [..., H, D] (cos and sin broadcast over the heads: [..., 1, D])."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class LlamaDecoder:
    """Prefill of P prompts, then decode steps for ``n = P * G`` rows (row ``p * G + g``
    samples from prompt p).

    ``ids``/``mask``: the [P, L] left-padded prompts and their attention mask;
    :attr:`first_logits` is [P, V], each prompt's next-token logits; :meth:`step` feeds one
    token per row and returns [n, V] logits for the next."""

    @torch.inference_mode()
    def __init__(self, model: Any, ids: torch.Tensor, mask: torch.Tensor, group_size: int, max_new_tokens: int) -> None:
        lm = _base_lm(model)
        cfg, inner = lm.config, lm.model
        first = inner.layers[0].self_attn
        self.hq, self.hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.d = first.head_dim
        self.scale = first.scaling
        self.eps = cfg.rms_norm_eps
        self.inter = cfg.intermediate_size
        self.g = group_size
        self.p, length = ids.shape
        self.n = self.p * group_size
        self.embed = inner.embed_tokens.weight
        self.final_norm = inner.norm.weight
        weights = _packed(model, self.n)
        self.head = weights["head"]
        self.layers = []
        for i, block in enumerate(inner.layers):
            self.layers.append({
                **weights["layers"][i],
                "ln1": block.input_layernorm.weight,
                "ln2": block.post_attention_layernorm.weight,
                "kg": self.embed.new_zeros(self.n, self.hkv, max_new_tokens, self.d),
                "vg": self.embed.new_zeros(self.n, self.hkv, max_new_tokens, self.d),
            })
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        steps = positions[:, -1:] + 1 + torch.arange(max_new_tokens, device=ids.device)  # [P, T]
        cos, sin = inner.rotary_emb(self.embed[:1], position_ids=torch.cat([positions, steps], 1))  # [P, L+T, D]
        self.first_logits = self._prefill(ids, mask, cos[:, :length, None], sin[:, :length, None])
        # additive mask over each prompt's keys: 0 on tokens, -inf on left padding
        bias = torch.zeros(mask.shape, dtype=self.embed.dtype, device=mask.device)
        self.prompt_bias = bias.masked_fill(mask == 0, float("-inf"))[:, None, None, :]  # [P, 1, 1, L]
        self.cos = cos[:, length:, None].repeat_interleave(group_size, 0)  # [n, T, 1, D]
        self.sin = sin[:, length:, None].repeat_interleave(group_size, 0)
        self.t = 0

    def _prefill(self, ids: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """The prompts' forward (causal, left padding masked; a padding query sees itself only,
        so no row is all -inf); keeps each layer's keys and values; [P, V] last-position logits."""
        p, length = ids.shape
        hq, hkv, d = self.hq, self.hkv, self.d
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()
        allowed = (causal & mask.bool()[:, None, :]) | torch.eye(length, dtype=torch.bool, device=ids.device)
        x = self.embed[ids].reshape(p * length, -1)
        for layer in self.layers:
            qkv = layer["qkv"](_rms(x, layer["ln1"], self.eps)).view(p, length, hq + 2 * hkv, d)
            qk = _rotate(qkv[:, :, : hq + hkv], cos, sin).transpose(1, 2)  # [P, H_q + H_kv, L, D]
            q, k = qk[:, :hq], qk[:, hq:]
            v = qkv[:, :, hq + hkv :].transpose(1, 2)
            layer["kp"] = k.transpose(-1, -2).contiguous()  # [P, H_kv, D, L]: the group's scores in one matmul
            layer["vp"] = v.contiguous()
            att = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed[:, None], scale=self.scale, enable_gqa=hq != hkv)
            x = x + layer["o"](att.transpose(1, 2).reshape(p * length, hq * d))
            gate, up = layer["gate_up"](_rms(x, layer["ln2"], self.eps)).split(self.inter, -1)
            x = x + layer["down"](torch.nn.functional.silu(gate) * up)
        last = x.view(p, length, -1)[:, -1]
        return self.head(_rms(last, self.final_norm, self.eps))

    def _attend(self, q: torch.Tensor, layer: dict[str, torch.Tensor]) -> torch.Tensor:
        """[n, H_q, D] queries over the prompt's and this row's generated keys -> [n, H_q * D]."""
        p, g, hkv, rep, d, t = self.p, self.g, self.hkv, self.hq // self.hkv, self.d, self.t
        qg = q.view(p, g, hkv, rep, d).transpose(1, 2).reshape(p, hkv, g * rep, d)  # the group's queries
        sp = torch.matmul(qg, layer["kp"]).mul_(self.scale).add_(self.prompt_bias)  # [P, H_kv, G*rep, L]
        qr = q.view(self.n, hkv, rep, d)
        sg = torch.matmul(qr, layer["kg"][:, :, : t + 1].transpose(-1, -2)).mul_(self.scale)  # [n, H_kv, rep, t+1]
        length = sp.shape[-1]
        sp_rows = sp.view(p, hkv, g, rep, length).transpose(1, 2).reshape(self.n, hkv, rep, length)
        probs = torch.softmax(torch.cat([sp_rows, sg], dim=-1), dim=-1)
        pp = probs[..., :length].reshape(p, g, hkv, rep, length).transpose(1, 2).reshape(p, hkv, g * rep, length)
        out = torch.matmul(pp, layer["vp"]).view(p, hkv, g, rep, d).transpose(1, 2).reshape(self.n, hkv, rep, d)
        out = out + torch.matmul(probs[..., length:], layer["vg"][:, :, : t + 1])
        return out.reshape(self.n, self.hq * d)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row ([n] ids; any id for a finished row); [n, V] next-token logits."""
        t, hq, hkv, d = self.t, self.hq, self.hkv, self.d
        cos, sin = self.cos[:, t], self.sin[:, t]  # [n, 1, D]
        x = self.embed[tokens]  # [n, hidden]
        for layer in self.layers:
            qkv = layer["qkv"](_rms(x, layer["ln1"], self.eps))
            qk = _rotate(qkv[:, : (hq + hkv) * d].view(self.n, hq + hkv, d), cos, sin)
            layer["kg"][:, :, t] = qk[:, hq:]
            layer["vg"][:, :, t] = qkv[:, (hq + hkv) * d :].view(self.n, hkv, d)
            x = x + layer["o"](self._attend(qk[:, :hq], layer))
            gate, up = layer["gate_up"](_rms(x, layer["ln2"], self.eps)).split(self.inter, -1)
            x = x + layer["down"](torch.nn.functional.silu(gate) * up)
        self.t += 1
        return self.head(_rms(x, self.final_norm, self.eps))
