"""docs/config.md is generated from the config dataclasses and must be current."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_config_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_config_docs", REPO / "scripts" / "gen_config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (REPO / "docs" / "config.md").read_text() == module.render(), "run scripts/gen_config_docs.py"
