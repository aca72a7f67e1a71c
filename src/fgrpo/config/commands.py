"""The config dataclass of every ``fgrpo`` command, in one place: every field with its
one-line help and its default (paper's, or ours where documented). This module sits at the
bottom of the layers with the loader (:mod:`fgrpo.config`): library code may read these
dataclasses, and nothing here imports a library folder at module level."""

from __future__ import annotations

# --------------------------------------------------------------------------- prepare
from dataclasses import dataclass  # noqa: E402
from typing import Literal  # noqa: E402

from fgrpo.config import option  # noqa: E402

DatasetName = Literal[
    "ml100k", "ml1m", "llara", "hotpotqa_distractor", "hotpotqa_ircot", "musique", "gold_retrieved"
]


@dataclass
class PrepareConfig:
    dataset: DatasetName = option(
        "ml100k",
        "ml100k (RecBole atomic files), ml1m (ratings.dat + movies.dat), llara (LLaRA's "
        "splits exported to JSONL/CSV), hotpotqa_distractor (original JSON), hotpotqa_ircot "
        "(IRCoT JSONL), musique (original JSONL/JSON), gold_retrieved (X.json + "
        "X_retrieved_context*.jsonl folder)",
    )
    input_path: str | None = option(
        None,
        "raw file (QA) or folder (ml100k, ml1m, llara, gold_retrieved); ml100k: null fetches "
        "it from the recbole==1.2.1 wheel into $FGRPO_CACHE or ~/.cache/fgrpo",
    )
    output_dir: str = option(
        "data/prepared", "folder for train/valid/test.jsonl and manifest.json (relative to cwd)"
    )
    seed: int = option(0, "seed of every random choice (negatives, padding, splits, order)")
    pool_size: int = option(20, "candidates per example (target/relevant ones included)")
    history_len: int = option(10, "recommendation: most recent history items shown in the query")
    max_train_per_user: int | None = option(
        None, "recommendation: keep each user's most recent training positions only (null: all)"
    )
    max_passage_words: int | None = option(
        128,
        "QA: cut each passage to this many whitespace-separated WORDS (a tokenizer-free "
        "bound on prompt length; null: no cut)",
    )
    valid_fraction: float = option(0.1, "QA: fraction of questions in the valid split")
    test_fraction: float = option(0.1, "QA: fraction of questions in the test split")
    max_examples: int | None = option(
        None, "keep a seeded subset of at most this many examples per split (null: all)"
    )
    skip_invalid: bool = option(
        False, "false: a bad record raises naming file, line and field; true: skip and count it"
    )
    skip_invalid_rows: bool | None = option(
        None,
        "the same as skip_invalid, under the name the other commands use (null: skip_invalid "
        "decides; true/false: overrides it)",
    )
    task: str | None = option(
        None,
        "task name written in each example (null: movies for MovieLens, passages for QA, "
        "for llara from the folder name: movies / music (lastfm) / games (steam))",
    )
    dedup_overlap: float = option(
        0.5,
        "gold_retrieved: a retrieved passage with a gold passage's title sharing at least "
        "this fraction of the shorter text's word trigrams is a copy of it and is dropped",
    )
    llara_padding_id: int | None = option(
        None, "llara: padding item id to drop from 'seq' (MovieLens 1682, LastFM 4606, Steam 3581)"
    )
    prompt_tokenizer: str | None = option(
        None,
        "model folder or builtin name whose tokenizer counts the rendered prompts' tokens for "
        "the manifest's prompt_lengths (null: not recorded)",
    )

    def __post_init__(self) -> None:
        if self.skip_invalid_rows is not None:
            self.skip_invalid = self.skip_invalid_rows

    def validate(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.pool_size < 2:
            raise ValueError(f"pool_size must be >= 2, got {self.pool_size}")
        if self.history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {self.history_len}")
        if self.max_train_per_user is not None and self.max_train_per_user < 0:
            raise ValueError(f"max_train_per_user must be >= 0, got {self.max_train_per_user}")
        if self.max_passage_words is not None and self.max_passage_words < 1:
            raise ValueError(f"max_passage_words must be >= 1, got {self.max_passage_words}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {self.max_examples}")
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must be < 1 (no training questions)")
        if not 0 < self.dedup_overlap <= 1:
            raise ValueError(f"dedup_overlap must be in (0, 1], got {self.dedup_overlap}")
        if self.input_path is None and self.dataset != "ml100k":
            raise ValueError(f"input_path is required for dataset '{self.dataset}'")
        if self.task is not None and not self.task.strip():
            raise ValueError("task must be a non-empty name or null")
