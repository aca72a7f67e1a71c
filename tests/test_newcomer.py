"""A newcomer's path, end to end through the CLI: the README's commands for one's own data
(the block between its ``newcomer-path`` markers), run as written on a small JSONL folder,
with a tiny model and budget keys appended (a later key=value wins)."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
# appended per command: the tiny builtin model in place of SmolLM2, and seconds-long budgets
BUDGET = {
    "check-data": ["model=builtin:tiny-llama"],
    "sft": ["model=builtin:tiny-llama", "max_steps=30", "batch_size=4", "learning_rate=0.003", "warmup_steps=2", "torch_threads=1"],
    "train": ["max_steps=2", "prompts_per_step=2", "group_size=2", "tensorboard=false", "torch_threads=1"],
    "eval": ["torch_threads=1"],
    "report": [],
    "rank": ["torch_threads=1"],
}


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- newcomer-path[^>]*-->\s*```bash\n(.*?)```\s*<!-- /newcomer-path -->", text, re.S)
    assert block, "README.md lost its newcomer-path block"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def own_data(folder: Path) -> None:
    """Passages of a made-up QA set: four per question, one or two relevant, the pool shuffled
    (seeded) so that no position gives the answer away."""
    rng = random.Random(0)
    words = ["river", "mountain", "city", "forest", "desert", "island", "valley", "lake"]
    for split, n in (("train", 16), ("valid", 4), ("test", 4)):
        with (folder / f"{split}.jsonl").open("w") as fh:
            for i in range(n):
                w = words[i % len(words)]
                cands = [{"id": f"{split}{i}-{j}", "text": f"the {words[(i + j) % len(words)]} passage {j}"} for j in range(4)]
                rel = {f"{split}{i}-0": 1} | ({f"{split}{i}-2": 1} if i % 3 == 0 else {})
                rng.shuffle(cands)
                fh.write(json.dumps({"id": f"{split}-{i}", "task": "passages", "query": f"which passage is about the {w}?",
                                     "candidates": cands, "relevance": rel}) + "\n")


def test_readme_path_on_ones_own_folder(tmp_path: Path) -> None:
    (tmp_path / "mydata").mkdir()
    own_data(tmp_path / "mydata")
    commands = readme_commands()
    assert [c[:2] for c in commands] == [["fgrpo", "check-data"], ["fgrpo", "sft"], ["fgrpo", "train"], ["fgrpo", "eval"], ["fgrpo", "report"],
                                         ["fgrpo", "rank"]]
    for argv in commands:
        proc = subprocess.run([sys.executable, "-m", "fgrpo", *argv[1:], *BUDGET[argv[1]]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600, env=ENV)
        assert proc.returncode == 0, f"{shlex.join(argv)}:\n{proc.stderr[-3000:]}"
        if argv[1] in ("sft", "train"):
            assert re.search(rf"\[{'sft' if argv[1] == 'sft' else 'fgrpo'}\] step \d+/\d+", proc.stderr)  # progress, no terminal
    runs = tmp_path / "runs"
    report = json.loads((runs / "check-data" / "check_data.json").read_text())
    assert not report["failures"], report
    assert (runs / "my-rl" / "model" / "fgrpo.json").is_file()
    metrics = json.loads((runs / "my-eval" / "metrics.json").read_text())
    assert metrics["num_examples"] == 4 and "warnings" in metrics
    page = (runs / "my-eval" / "report.html").read_text()
    assert "which passage is about the river?" in page and 'class="cand relevant"' in page
    rankings = [json.loads(line) for line in (runs / "my-rankings.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rankings] == [f"test-{i}" for i in range(4)]
    for r, i in zip(rankings, range(4), strict=True):
        assert set(r["slate"]) <= {f"test{i}-{j}" for j in range(4)}
