"""The layer rule of docs/architecture.md, checked on the code's own imports.

Every ``fgrpo`` module belongs to one layer (its top-level folder, or the top-level module
itself); a module may import only from its own layer or from layers below it. The order is
the one docs/architecture.md draws. Imports inside functions count as well (a lazy import
is still a dependency), and so do imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fgrpo"

# low -> high: a layer may import its own and the ones before it
LAYERS = [
    "config",  # the loader and every command's config dataclass
    "kernels",  # fp32 linears through oneDNN on CPU
    "data",  # schema, readers, builders, the one dataset-folder reader
    "format",  # prompts, the answer format, its parser and constraint
    "algorithm",  # rewards and advantage estimators: pure tensor maths
    "rollout",  # generation
    "models",  # loading, presets, model folders
    "evaluation",  # metrics, greedy evaluation
    "baselines",  # classic rankers/scorers, trained with evaluation's metrics
    "trainer",  # SFT, RL step and loop, pretraining, checkpoints, launch
    "integrations",  # F-GRPO on TRL and verl (optional engines); nothing else imports it
    "experiments",  # compare: spec, runner, stats, report, plots
    "ranker",  # the public Python API (fgrpo.Ranker)
    "commands",  # one module per fgrpo command
    "cli",  # the typer app
]
TOP = {"__init__", "__main__"}  # the package's entry points may import anything


def layer_of(module: str) -> str:
    """'fgrpo.trainer.sft' -> 'trainer'; 'fgrpo.cli' -> 'cli'; 'fgrpo' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def fgrpo_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of an fgrpo module in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "fgrpo" or node.module.startswith("fgrpo."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("fgrpo.")]
    return found


def upward_imports() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        me = module_name(path)
        mine = layer_of(me) if me != "fgrpo" else "__init__"
        if mine in TOP:
            continue
        assert mine in LAYERS, f"{path}: module of no layer ({mine}); add it to LAYERS and docs/architecture.md"
        for line, target in fgrpo_imports(path):
            theirs = layer_of(target)
            if theirs == "__init__":
                bad.append(f"{path.relative_to(SRC.parent)}:{line}: imports the package root 'fgrpo'")
            elif theirs not in LAYERS:
                bad.append(f"{path.relative_to(SRC.parent)}:{line}: imports {target}, which is in no layer")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                bad.append(f"{path.relative_to(SRC.parent)}:{line}: {mine} imports {target} ({theirs} is above it)")
    return bad


def test_no_import_runs_up_the_layers() -> None:
    bad = upward_imports()
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import written into a file is found (not a test that cannot fail)."""
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from fgrpo.commands.train import x\n", encoding="utf-8")
    assert fgrpo_imports(sample) == [(2, "fgrpo.commands.train")]
    assert LAYERS.index(layer_of("fgrpo.commands.train")) > LAYERS.index(layer_of("fgrpo.data.schema"))


def test_library_folders_hold_no_command() -> None:
    """No library module defines a typer app or a ``run_*`` command entry point."""
    library = [d for d in LAYERS if d not in ("commands", "cli", "ranker", "experiments")]
    bad = []
    for name in library:
        folder = SRC / name
        files = sorted(folder.rglob("*.py")) if folder.is_dir() else [SRC / f"{name}.py"]
        for path in files:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name.startswith("run_"):
                    bad.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {node.name}")
                if isinstance(node, ast.Import | ast.ImportFrom) and "typer" in ast.dump(node):
                    bad.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: imports typer")
    assert not bad, "command code in a library folder:\n" + "\n".join(bad)


def test_nothing_else_imports_the_integrations() -> None:
    """The engines are optional extras: no fgrpo module outside ``integrations`` imports it."""
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if layer_of(module_name(path)) == "integrations":
            continue
        bad += [f"{path.relative_to(SRC.parent)}:{line}: {target}" for line, target in fgrpo_imports(path)
                if layer_of(target) == "integrations"]  # fmt: skip
    assert not bad, "imports of fgrpo.integrations outside it:\n" + "\n".join(bad)


def test_library_folders_set_no_command_up() -> None:
    """Seeding, threads, the output folder and config.yaml are the commands' set-up (setup_run)."""
    for package in ("data", "format", "algorithm", "rollout", "trainer", "evaluation", "baselines", "models", "integrations"):
        for path in (SRC / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "save_config(" not in text and "setup_run(" not in text, f"{path.relative_to(SRC)} sets a command up"


def test_the_config_layer_knows_the_toy_vocabulary_size() -> None:
    from fgrpo.config.commands import TOY_VOCABULARY
    from fgrpo.data.toy import TOY_WORDS

    assert len(TOY_WORDS) == TOY_VOCABULARY
