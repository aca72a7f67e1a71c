"""Config loading: YAML + ``key=value`` overrides, every key and type checked, errors that
name the key and where it came from; every file in configs/ loads; every field has help."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fgrpo.config import ConfigError, field_help, load_config, parse_overrides
from fgrpo.config.commands import (
    CompareConfig,
    EvalConfig,
    PrepareConfig,
    PretrainItemsConfig,
    SFTConfig,
    TrainConfig,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


CONFIG_CLASSES = {
    "train": TrainConfig,
    "sft": SFTConfig,
    "prepare": PrepareConfig,
    "eval": EvalConfig,
    "compare": CompareConfig,
    "pretrain": PretrainItemsConfig,
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_layer(tmp_path: Path) -> None:
    path = _write(tmp_path, "group_size: 4\nlearning_rate: 0.001\nadvantage_estimator: grpo\n")
    cfg = load_config(TrainConfig, path, ["group_size=6", "use_lora=true", "--max-new-tokens=32"])
    assert (cfg.group_size, cfg.learning_rate, cfg.advantage_estimator) == (6, 0.001, "grpo")
    assert cfg.use_lora is True and cfg.max_new_tokens == 32
    assert cfg.prompts_per_step == TrainConfig().prompts_per_step  # untouched default
    assert load_config(TrainConfig, None) == TrainConfig()


def test_unknown_yaml_key_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "group_size: 4\ngroup_sise: 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, path, ["group_size=6"])
    assert "group_sise" in str(e.value) and str(path) in str(e.value)
    assert "command line" not in str(e.value)  # the file's own key, not blamed on the overrides


def test_unknown_override_key_is_named() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, None, ["lerning_rate=0.1"])
    assert "lerning_rate" in str(e.value) and "command line" in str(e.value)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("group_size=abc", "group_size"),
        ("use_lora=3", "use_lora"),
        ("group_size=2.5", "group_size"),
        ("use_lora=yes_please", "use_lora"),
        ("advantage_estimator=ppo", "advantage_estimator"),
        ("learning_rate=fast", "learning_rate"),
        ("group_size=true", "group_size"),
    ],
)
def test_wrong_type_names_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, None, [override])
    assert f"'{key}'" in str(e.value)


def test_wrong_type_in_yaml_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "use_lora: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, path)
    assert "'use_lora'" in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize("source", ["yaml", "override"])
def test_contradiction_names_both_keys(tmp_path: Path, source: str) -> None:
    if source == "yaml":
        args = (_write(tmp_path, "max_slate: 5\nmax_rank: 6\n"), None)
    else:
        args = (None, ["max_slate=5", "max_rank=6"])
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, *args)
    assert "max_rank" in str(e.value) and "max_slate" in str(e.value)
    assert (
        load_config(TrainConfig, None, ["max_slate=5", "max_rank=5", "sft_slate_size=5"]).max_rank
        == 5
    )


def test_int_widens_to_float(tmp_path: Path) -> None:
    cfg = load_config(TrainConfig, _write(tmp_path, "clip_eps_low: 0\n"), ["learning_rate=1"])
    assert cfg.learning_rate == 1.0 and type(cfg.learning_rate) is float
    assert cfg.clip_eps_low == 0.0 and type(cfg.clip_eps_low) is float


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(TrainConfig, _write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["group_size"])
    assert load_config(TrainConfig, _write(tmp_path, "# only a comment\n")) == TrainConfig()


def _command_of(path: Path) -> str:
    name = path.name
    for prefix in ("prepare", "sft", "eval", "compare", "pretrain"):
        if name.startswith(prefix):
            return prefix
    return "train"


YAMLS = sorted(CONFIGS.glob("*.yaml"))


def test_configs_folder_is_not_empty() -> None:
    assert len(YAMLS) >= 2


@pytest.mark.parametrize("path", YAMLS, ids=[p.name for p in YAMLS])
def test_every_config_file_loads(path: Path) -> None:
    cls = CONFIG_CLASSES[_command_of(path)]
    cfg = load_config(cls, path)
    assert isinstance(cfg, cls)
    assert path.read_text().lstrip().startswith("#"), "configs are commented documents"


@pytest.mark.parametrize("command", sorted(CONFIG_CLASSES))
def test_every_field_has_help(command: str) -> None:
    cls = CONFIG_CLASSES[command]
    info = field_help(cls)
    assert set(info) == {f.name for f in dataclasses.fields(cls)}
    defaults = cls()
    for name, (type_name, default, help_text) in info.items():
        assert help_text.strip(), f"{cls.__name__}.{name} has no help"
        assert type_name, name
        assert default == getattr(defaults, name), name
