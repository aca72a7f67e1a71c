"""Hidden dropout hooks (models/dropout.py): on in train mode only, removed on exit, checked keys."""

from __future__ import annotations

import pytest
import torch

from fgrpo.config import ConfigError, load_config
from fgrpo.config.commands import PretrainItemsConfig, SFTConfig
from fgrpo.models.dropout import dropout_targets, hidden_dropout
from fgrpo.models.idtiny import build_id_tiny


def _model() -> torch.nn.Module:
    return build_id_tiny(64, hidden_size=32, num_layers=2, num_heads=2, seed=0)


def _logits(model: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    ids = torch.arange(1, 9).unsqueeze(0)
    return model(input_ids=ids).logits


def test_hooks_cover_embeddings_attention_and_mlp() -> None:
    names = dropout_targets(_model())
    assert names == ["model.embed_tokens", "model.layers.0.self_attn", "model.layers.0.mlp", "model.layers.1.self_attn", "model.layers.1.mlp"]


def test_dropout_acts_in_train_mode_only_and_is_removed_on_exit() -> None:
    model = _model()
    model.train()
    plain = _logits(model)
    with hidden_dropout(model, 0.5) as hooked:
        assert hooked == 5
        dropped = _logits(model)
        assert not torch.allclose(dropped, plain)  # dropout changed the training forward
        assert torch.equal(_logits(model, 1), _logits(model, 1))  # the same seed, the same mask
        model.eval()
        assert torch.equal(_logits(model), plain)  # eval: no dropout although hooked
        model.train()
    assert torch.equal(_logits(model), plain)  # hooks gone after the block
    assert all(not m._forward_hooks for m in model.modules())


def test_zero_rate_adds_no_hook_and_bad_rates_are_refused() -> None:
    model = _model()
    with hidden_dropout(model, 0.0) as hooked:
        assert hooked == 0 and all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="hidden_dropout"), hidden_dropout(model, 1.0):
        pass
    with pytest.raises(ValueError, match="no embed_tokens"), hidden_dropout(torch.nn.Linear(2, 2), 0.1):
        pass


@pytest.mark.parametrize("cls", [PretrainItemsConfig, SFTConfig])
def test_config_key_is_checked(cls: type) -> None:
    with pytest.raises(ConfigError, match="hidden_dropout"):
        load_config(cls, None, ["hidden_dropout=1.5"])
    assert load_config(cls, None, ["hidden_dropout=0.3"]).hidden_dropout == 0.3
