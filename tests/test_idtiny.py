"""The id-tiny preset: item-token tokenizer, item-token completions, next-item pretraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fgrpo.data.movielens import Interaction, RecData
from fgrpo.data.next_item import build_sequential
from fgrpo.data.schema import Candidate, Example, write_jsonl
from fgrpo.format.completion import parse_completion, render_completion
from fgrpo.format.items import candidate_labels, item_prompt, item_token, uses_item_tokens
from fgrpo.format.prompts import encode_prompt, render_prompt
from fgrpo.format.spans import (
    PieceTable,
    char_offsets,
    decode_completions,
    phase_masks,
    slate_token_count_by_search,
    slate_token_counts,
)
from fgrpo.models.idtiny import build_id_tiny, build_item_tokenizer
from fgrpo.trainer.pretrain import next_item_batch, next_item_loss, pretrain_items, train_sequences

N_ITEMS = 40


def _rec_data(n_users: int = 24, seed: int = 0) -> RecData:
    """Users walk the catalogue in steps of +1 from a random start: a learnable next item."""
    rng = np.random.default_rng(seed)
    inter = []
    for u in range(1, n_users + 1):
        start, length = int(rng.integers(1, N_ITEMS + 1)), int(rng.integers(8, 16))
        for t in range(length):
            inter.append(Interaction(str(u), str((start + t - 1) % N_ITEMS + 1), float(t)))
    titles = {str(i): f"Movie {i}" for i in range(1, N_ITEMS + 1)}
    return RecData(inter, titles, Path("fixture.inter"), Path("fixture.item"))


@pytest.fixture(scope="module")
def splits() -> dict[str, list[Example]]:
    return build_sequential(_rec_data(), pool_size=6, history_len=4)


@pytest.fixture(scope="module")
def tok():
    return build_item_tokenizer([str(i) for i in range(1, N_ITEMS + 1)])


def _example() -> Example:
    cands = [Candidate("7", "a"), Candidate("12", "b"), Candidate("3", "c"), Candidate("40", "d")]
    return Example("u1-5", "q", cands, {"12": 1}, task="movies", meta={"history_ids": ["1", "2", "9"]})


def test_tokenizer_round_trips_prompts_and_completions(tok, tmp_path: Path) -> None:
    ex = _example()
    labels = candidate_labels(tok, ex)
    assert labels == ["[i7]", "[i12]", "[i3]", "[i40]"]
    prompt = render_prompt(tok, ex, 10, 5)
    assert prompt == "<POOL> [i7] [i12] [i3] [i40] <HIST> [i1] [i2] [i9]"
    ids = encode_prompt(tok, ex, 10, 5)
    assert len(ids) == 9 and tok.unk_token_id not in ids  # one token per item and tag
    text = render_completion([2, 4, 1], [4, 2], labels)
    assert text == "<SLATE>[i12] [i40] [i7]</SLATE><RANK>[i40] > [i12]</RANK>"
    cids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(cids) == 10
    decoded = tok.decode(cids)
    assert tok(decoded, add_special_tokens=False)["input_ids"] == cids
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert uses_item_tokens(again)
    assert again(text, add_special_tokens=False)["input_ids"] == cids
    assert encode_prompt(again, ex, 10, 5) == ids
    assert (again.pad_token_id, again.eos_token_id) == (0, 1)


def test_number_tokenizers_are_not_item_mode(tiny_tok) -> None:
    assert not uses_item_tokens(tiny_tok)
    assert candidate_labels(tiny_tok, _example()) is None


def test_parse_maps_item_tokens_to_pool_numbers(tok) -> None:
    labels = candidate_labels(tok, _example())
    p = parse_completion("<SLATE> [i12] [i40] [i7] </SLATE> <RANK> [i40] > [i12] </RANK>", 4, 10, 5, labels=labels)
    assert (p.slate, p.ranking, p.valid, p.errors) == ([2, 4, 1], [4, 2], True, [])
    # an item outside the pool, a number, a duplicate: each named, the slate invalid
    p = parse_completion("<SLATE>[i12] [i5]</SLATE><RANK>[i12]</RANK>", 4, 10, 5, labels=labels)
    assert p.errors == ["slate_unknown_number"] and p.slate == [2] and not p.slate_valid
    p = parse_completion("<SLATE>[2] [i7]</SLATE><RANK>[i7]</RANK>", 4, 10, 5, labels=labels)
    assert "slate_unknown_number" in p.errors and not p.slate_valid
    p = parse_completion("<SLATE>[i7] [i7]</SLATE><RANK>[i7]</RANK>", 4, 10, 5, labels=labels)
    assert p.errors == ["slate_duplicate"]
    p = parse_completion("<SLATE>[i7] movie</SLATE><RANK>[i7]</RANK>", 4, 10, 5, labels=labels)
    assert p.errors == ["slate_malformed"]
    p = parse_completion("<SLATE>[i7] [i3]</SLATE><RANK>[i12]</RANK>", 4, 10, 5, labels=labels)
    assert p.slate_valid and p.errors == ["rank_not_in_slate"]
    # without labels the old parser is unchanged: item tokens are malformed there
    assert "slate_malformed" in parse_completion("<SLATE>[i7]</SLATE><RANK>[i7]</RANK>", 4, 10, 5).errors


def test_parse_long_item_ids() -> None:
    """Item ids are not bounded in length (a 64-character hash is one): they parse like short ones."""
    ids = ["f" * 64, "0123456789abcdef" * 8, "7"]
    labels = [item_token(i) for i in ids]
    text = render_completion([2, 1, 3], [1, 2], labels)
    p = parse_completion(text, 3, 10, 5, labels=labels)
    assert (p.slate, p.ranking, p.valid) == ([2, 1, 3], [1, 2], True)


@pytest.mark.parametrize("slate,ranking", [([2], [2]), ([2, 4, 1], [4, 2]), ([1, 2, 3, 4], [3, 1, 4, 2])])
def test_phase_masks_exact_on_item_token_completions(tok, slate, ranking) -> None:
    labels = candidate_labels(tok, _example())
    ids = tok(render_completion(slate, ranking, labels), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    texts = decode_completions(tok, [ids])
    parsed = parse_completion(texts[0], 4, 10, 5, labels=labels)
    assert parsed.valid and parsed.slate == slate and parsed.ranking == ranking
    table = PieceTable.for_tokenizer(tok)
    assert char_offsets(table, ids, texts[0]) is not None  # the fast path, not the fallback
    n = slate_token_counts(tok, [ids], texts, [parsed.slate_end])[0]
    # by hand: <SLATE>, the slate's items, </SLATE>; the rest (EOS included) is the ranking
    assert n == len(slate) + 2
    assert slate_token_count_by_search(tok, ids, parsed.slate_end) == n
    assert tok.convert_ids_to_tokens(ids[n - 1]) == "</SLATE>"
    slate_mask, rank_mask = phase_masks(torch.tensor([n]), torch.tensor([len(ids)]), len(ids) + 2)
    assert slate_mask[0].tolist() == [True] * n + [False] * (len(ids) + 2 - n)
    assert rank_mask[0].tolist() == [False] * n + [True] * (len(ids) - n) + [False, False]


def test_item_prompt_needs_history_ids() -> None:
    ex = _example()
    ex.meta = {}
    with pytest.raises(ValueError, match="meta.history_ids"):
        item_prompt(ex)
    with pytest.raises(ValueError, match="item token"):
        item_token("a b")


def test_items_outside_the_vocabulary_are_refused_by_name(tok) -> None:
    ex = _example()
    ex.candidates[1] = Candidate("41", "e")  # the tokenizer knows items 1..40
    ex.meta = {"history_ids": ["1", "99"]}
    with pytest.raises(ValueError, match=r"'u1-5'.*\[i41\] \[i99\] are not in the model's vocabulary"):
        render_prompt(tok, ex, 10, 5)
    assert render_prompt(tok, _example(), 10, 5).startswith("<POOL> [i7] [i12]")


def test_pretraining_needs_a_sequence(tok) -> None:
    model = build_id_tiny(len(tok), 16, 1, 2)
    with pytest.raises(ValueError, match="at least one training sequence"):
        pretrain_items(model, tok, [], steps=1, batch_size=2, seq_len=4, learning_rate=1e-3, seed=0)
    assert pretrain_items(model, tok, [], steps=0, batch_size=2, seq_len=4, learning_rate=1e-3, seed=0) == []


def test_train_sequences_use_training_positions_only(splits) -> None:
    data = _rec_data()
    by_user: dict[str, list[str]] = {}
    for it in sorted(data.interactions, key=lambda e: (e.user, e.timestamp)):
        by_user.setdefault(it.user, []).append(it.item)
    seqs = train_sequences(splits["train"])
    expected = [by_user[u][:-2] for u in sorted(by_user, key=int)]  # valid and test targets left out
    assert seqs == expected
    held_out = {(ex.meta["user"], ex.meta["position"]) for s in ("valid", "test") for ex in splits[s]}
    assert all(len(by_user[u]) - 2 <= t for u, t in held_out)


def test_next_item_batch_labels(tok) -> None:
    seqs = [np.array([10, 11, 12, 13]), np.array([20, 21])]
    hist = tok.convert_tokens_to_ids("<HIST>")
    batch = next_item_batch(seqs, np.array([0.5, 0.5]), 8, 3, hist, 0, np.random.default_rng(0))
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        row = ids[mask.bool()].tolist()
        assert row[0] == hist and 2 <= len(row) - 1 <= 3  # <HIST> then 2..seq_len items
        assert labels[mask.bool()].tolist() == [-100] + row[1:]  # <HIST> is never a target
        assert (labels[~mask.bool()] == -100).all()


def test_next_item_pretraining_learns(tok, splits) -> None:
    """The fixture's next item is the current one + 1: 80 steps must cut the loss well below
    its start (ln 51 ~ 3.9 for a uniform guess) on batches the model never trained on."""
    seqs = train_sequences(splits["train"])
    model = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
    ids = [np.array(tok.convert_tokens_to_ids([item_token(i) for i in s])) for s in seqs]
    w = np.array([len(s) - 1 for s in ids], dtype=float)
    held = next_item_batch(ids, w / w.sum(), 32, 8, tok.convert_tokens_to_ids("<HIST>"), 0, np.random.default_rng(99))
    torch.manual_seed(0)
    with torch.no_grad():
        before = next_item_loss(model, held).item()
    losses = pretrain_items(model, tok, seqs, steps=80, batch_size=16, seq_len=8, learning_rate=0.01, seed=0, warmup_steps=5)
    with torch.no_grad():
        after = next_item_loss(model, held).item()
    assert before > 3.5 and after < 0.5 * before, (before, after)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_preset_builds_saves_loads_and_decodes(splits, tmp_path: Path) -> None:
    from fgrpo.commands.pretrain_items import run_pretrain_items
    from fgrpo.config.commands import PretrainItemsConfig
    from fgrpo.evaluation.evaluate import predict
    from fgrpo.models.loading import load_model, load_tokenizer

    data = tmp_path / "data"
    for name, exs in splits.items():
        write_jsonl(exs, data / f"{name}.jsonl")
    cfg = PretrainItemsConfig(dataset=str(data), output_dir=str(tmp_path / "pre"), hidden_size=32, num_layers=2,
                              num_heads=2, max_steps=3, batch_size=4, seq_len=6, warmup_steps=0, eval_limit=5)  # fmt: skip
    folder = run_pretrain_items(cfg)
    tok = load_tokenizer(str(folder))
    model = load_model(str(folder))
    assert uses_item_tokens(tok) and model.config.num_hidden_layers == 2
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == 3 + 4 + 2 + 1 + N_ITEMS
    preds = predict(model, tok, splits["valid"][:3], 10, 5, max_new_tokens=8, batch_size=3, progress=False)
    assert len(preds) == 3 and all(isinstance(p["completion"], str) for p in preds)
    constrained = predict(model, tok, splits["valid"][:3], 10, 5, max_new_tokens=32, batch_size=3, progress=False, constrained=True)
    assert all(p["slate_valid"] and p["rank_valid"] for p in constrained)  # even from 3 steps
    assert (tmp_path / "pre" / "summary.json").is_file()


def test_ranked_slate_order_follows_filler_order() -> None:
    from fgrpo.trainer.sft import sft_target

    ex = _example()  # candidate 2 is relevant
    slate, ranking = sft_target(ex, 3, 2, np.random.default_rng(0), lambda e: [4, 3, 2, 1], "ranked")
    assert slate == [2, 4, 3] and ranking == [2, 4]


def test_model_filler_order_is_the_frozen_starting_models(tok, splits) -> None:
    from fgrpo.commands.sft import filler_order
    from fgrpo.models.idtiny import next_item_scores

    model = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
    ex = splits["train"][0]
    scores = next_item_scores(model, tok, [ex])[0]
    order = filler_order("model", splits["train"], model, tok)
    with torch.no_grad():  # training the live model must not change the fillers
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    got = order(ex)
    assert sorted(got) == list(range(1, ex.num_candidates + 1))
    assert [scores[k - 1] for k in got] == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="item-token"):
        from fgrpo.models.tiny import build_tiny_tokenizer

        filler_order("model", splits["train"], model, build_tiny_tokenizer())


def test_model_filler_order_batched_prefetch_matches_one_at_a_time(tok, splits) -> None:
    from fgrpo.commands.sft import filler_order

    model = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
    examples = splits["train"][:12]  # early positions have short histories: left padding in the batch
    one = filler_order("model", splits["train"], model, tok)
    expected = [one(ex) for ex in examples]
    batched = filler_order("model", splits["train"], model, tok)
    batched.prefetch(examples + examples[:3])  # repeats are scored once
    assert len(batched.orders) == len({ex.id for ex in examples})
    assert [batched(ex) for ex in examples] == expected


def test_item_constraint_allows_exactly_valid_completions(tok) -> None:
    """Random walks through the allowed tokens always parse as valid, and a token outside
    the allowed set at any step makes the prefix unparseable or invalid."""
    from fgrpo.format.items import ItemConstraint

    ex = _example()
    labels = candidate_labels(tok, ex)
    con = ItemConstraint(tok, [ex], max_slate=3, max_rank=2)
    rng = np.random.default_rng(0)
    for _ in range(50):
        done: list[int] = []
        while not done or done[-1] != tok.eos_token_id:
            allowed = con.allowed([done], [0], len(tok))[0].nonzero().flatten().tolist()
            assert allowed and allowed == sorted(set(allowed))
            done.append(int(rng.choice(allowed)))
        text = tok.decode(done, skip_special_tokens=True)
        p = parse_completion(text, 4, max_slate=3, max_rank=2, labels=labels)
        assert p.valid, text
        assert len(p.slate) <= 3 and 1 <= len(p.ranking) <= 2
    # a pool item repeated, or an item outside the pool, is never allowed
    slate_open, i7, i1 = tok.convert_tokens_to_ids(["<SLATE>", "[i7]", "[i1]"])
    allowed = con.allowed([[slate_open, i7]], [0], len(tok))[0]
    assert not allowed[i7] and not allowed[i1] and allowed[tok.convert_tokens_to_ids("</SLATE>")]


def test_decoding_constraint_follows_the_tokenizer(tok, tiny_tok) -> None:
    from fgrpo.format.constrained import FormatConstraint, decoding_constraint
    from fgrpo.format.items import ItemConstraint

    item = decoding_constraint(tok, [_example()], 3, 2)
    assert isinstance(item, ItemConstraint) and item.pools == [tok.convert_tokens_to_ids(["[i7]", "[i12]", "[i3]", "[i40]"])]
    numbers = decoding_constraint(tiny_tok, [_example()], 3, 2)
    assert isinstance(numbers, FormatConstraint) and numbers.num_candidates == [4] and numbers.phase == "both"


def test_item_prompt_of_the_rank_phase_shows_the_slate_in_pool_order(tok) -> None:
    ex = _example()  # pool 7 12 3 40
    assert item_prompt(ex, slate=[4, 2]) == "<POOL> [i12] [i40] <HIST> [i1] [i2] [i9]"
    assert render_prompt(tok, ex, 10, 5, phase="rank", slate=[2, 4]) == item_prompt(ex, slate=[4, 2])
    assert render_prompt(tok, ex, 10, 5, phase="slate") == render_prompt(tok, ex, 10, 5) == item_prompt(ex)
    with pytest.raises(ValueError, match="slate exactly"):
        render_prompt(tok, ex, 10, 5, phase="rank")
    with pytest.raises(ValueError, match="style"):
        render_prompt(tok, ex, 10, 5, style="zeroshot")


def test_item_constraint_phases(tok) -> None:
    """phase=slate: a slate then EOS; phase=rank: a ranking of the given slate then EOS."""
    from fgrpo.format.completion import render_slate
    from fgrpo.format.items import ItemConstraint

    ex = _example()
    labels = candidate_labels(tok, ex)
    rng = np.random.default_rng(1)

    def walk(con) -> str:
        done: list[int] = []
        while not done or done[-1] != tok.eos_token_id:
            allowed = con.allowed([done], [0], len(tok))[0].nonzero().flatten().tolist()
            done.append(int(rng.choice(allowed)))
        return tok.decode(done, skip_special_tokens=True)

    selector = ItemConstraint(tok, [ex], max_slate=3, max_rank=2, phase="slate")
    ranker = ItemConstraint(tok, [ex], max_slate=3, max_rank=2, phase="rank", slates=[[4, 1]])
    for _ in range(30):
        text = walk(selector)
        assert text.startswith("<SLATE>") and text.endswith("</SLATE>") and "<RANK>" not in text
        assert parse_completion(text, 4, 3, 2, labels=labels).slate_valid
        rank = walk(ranker)
        assert rank.startswith("<RANK>") and "<SLATE>" not in rank
        p = parse_completion(render_slate([4, 1], labels) + rank, 4, 3, 2, labels=labels)
        assert p.valid and set(p.ranking) <= {4, 1}
    with pytest.raises(ValueError, match="slates"):
        ItemConstraint(tok, [ex], 3, 2, phase="rank")


def test_decoupled_sft_and_two_step_eval_on_an_item_token_model(tok, splits) -> None:
    """Decoupled SFT for id-tiny: a selector (target=slate) and a ranker (target=rank, shown
    only the slate) trained apart, chained by predict_two_step: constrained answers are valid,
    and the joined completion is scored with item labels like a one-pass answer."""
    from fgrpo.evaluation.two_step import predict_two_step
    from fgrpo.trainer.sft import supervised_steps

    models = {}
    for target in ("slate", "rank"):
        model = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
        losses = supervised_steps(model, tok, splits["train"], steps=30, batch_size=8, learning_rate=3e-3, seed=0,
                                  slate_size=3, max_slate=3, max_rank=2, target=target)  # fmt: skip
        assert np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns its half of the format
        models[target] = model
    preds = predict_two_step(models["slate"], tok, models["rank"], tok, splits["test"][:6], max_slate=3, max_rank=2,
                             max_new_tokens=12, batch_size=4, progress=False, constrained=True)  # fmt: skip
    assert len(preds) == 6
    for p in preds:
        assert p["slate_valid"] and p["rank_valid"], p
        assert p["ranker_completion"].startswith("<RANK>") and "[i" in p["selector_completion"]


def test_pretraining_early_stops_on_valid_and_restores_the_best(tok, splits) -> None:
    """A scripted valid curve that peaks at the second evaluation: training stops after
    ``patience`` worse evaluations and the weights of the peak are restored."""
    model = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
    seqs = train_sequences(splits["train"])
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.25])  # the last: the final weights' score
    snapshots: list[torch.Tensor] = []

    def validate() -> float:
        snapshots.append(model.model.embed_tokens.weight.detach().clone())
        return next(scores)

    rows: list[dict] = []
    losses = pretrain_items(model, tok, seqs, steps=60, batch_size=8, seq_len=6, learning_rate=0.01, seed=0,
                            log=rows.append, log_every=100, validate=validate, eval_every=5, patience=2)  # fmt: skip
    assert len(losses) == 20  # evaluations at steps 5 (0.1), 10 (0.5), 15 (0.3), 20 (0.2): two misses, stop
    assert torch.equal(model.model.embed_tokens.weight, snapshots[1])  # step 10's weights
    assert any("restored the weights of step 10" in str(r.get("note")) for r in rows)


def test_fused_teacher_order_is_the_mean_rank_by_hand() -> None:
    from fgrpo.commands.sft import FusedOrder

    a, b, c = (lambda e: [1, 2, 3, 4]), (lambda e: [2, 1, 4, 3]), (lambda e: [3, 2, 1, 4])
    # rank sums: 1 -> 0+1+2 = 3, 2 -> 1+0+1 = 2, 3 -> 2+3+0 = 5, 4 -> 3+2+3 = 8
    assert FusedOrder([a, b, c])(None) == [2, 1, 3, 4]
    assert FusedOrder([a, b])(None) == [1, 2, 3, 4]  # 1 and 2 tie (1 each): the first order decides


def test_sasrec_teacher_order_is_the_trained_baselines(splits) -> None:
    from fgrpo.baselines.sequential import SeqConfig, SequentialScorer
    from fgrpo.commands.sft import filler_order

    cfg = SeqConfig(seed=3, epochs=2, patience=0)
    order = filler_order("sasrec", splits["train"], valid=splits["valid"], seed=3)
    want = SequentialScorer("sasrec", SeqConfig(seed=3)).fit(splits["train"], splits["valid"])
    ex = splits["valid"][0]
    assert order(ex) == want.rank(ex) and sorted(order(ex)) == list(range(1, ex.num_candidates + 1))
    assert cfg.seed == 3


def test_pretraining_starts_from_sasrecs_item_embeddings(splits, tmp_path: Path) -> None:
    from fgrpo.baselines.sequential import SeqConfig, SequentialScorer
    from fgrpo.commands.pretrain_items import run_pretrain_items
    from fgrpo.config.commands import PretrainItemsConfig
    from fgrpo.format.items import item_token
    from fgrpo.models.loading import load_model, load_tokenizer

    data = tmp_path / "data"
    for name, exs in splits.items():
        write_jsonl(exs, data / f"{name}.jsonl")
    sasrec = SequentialScorer("sasrec", SeqConfig(seed=1, epochs=2, patience=0, hidden=16)).fit(splits["train"])
    saved = sasrec.save(tmp_path / "scorer.pt", splits["train"])
    common = {"dataset": str(data), "hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_steps": 0}
    folder = run_pretrain_items(PretrainItemsConfig(**common, output_dir=str(tmp_path / "pre"), item_embeddings_from=str(saved)))
    plain = run_pretrain_items(PretrainItemsConfig(**common, output_dir=str(tmp_path / "plain")))
    tok, emb = load_tokenizer(str(folder)), load_model(str(folder)).get_input_embeddings().weight
    base = load_model(str(plain)).get_input_embeddings().weight
    vectors = SequentialScorer.item_embeddings(saved)
    rows = torch.tensor(tok.convert_tokens_to_ids([item_token(i) for i in vectors]))
    table = torch.stack(list(vectors.values()))
    want = (table - table.mean()) / table.std() * base[rows].std()  # the init's spread, SASRec's geometry
    assert torch.allclose(emb[rows], want, atol=1e-6)
    others = torch.ones(len(tok), dtype=torch.bool)
    others[rows] = False
    assert torch.equal(emb[others], base[others])  # tags and specials keep the seeded init
    assert json.loads((tmp_path / "pre" / "summary.json").read_text())["item_embeddings_copied"] == len(vectors)
    with pytest.raises(ValueError, match="item_embeddings_from.*16 wide.*set hidden_size=16"):
        run_pretrain_items(PretrainItemsConfig(**{**common, "hidden_size": 32}, output_dir=str(tmp_path / "bad"), item_embeddings_from=str(saved)))


def test_teacher_models_join_the_starting_models_order_by_mean_rank(tok, splits) -> None:
    """``teachers``: the starting model's order and each teacher's, fused by summed rank,
    ties by the starting model's (computed here from the two models' scores by hand)."""
    from fgrpo.commands.sft import ModelFillerOrder, filler_order
    from fgrpo.models.idtiny import next_item_scores

    own = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
    other = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=1)
    examples = splits["train"][:8]
    fused = filler_order("model", splits["train"], own, tok, teachers=[ModelFillerOrder(other, tok)])
    alone = filler_order("model", splits["train"], own, tok)
    changed = 0
    for ex in examples:
        pos = []
        for m in (own, other):
            s = next_item_scores(m, tok, [ex])[0]
            order = sorted(range(1, ex.num_candidates + 1), key=lambda k, s=s: -s[k - 1])
            pos.append({k: r for r, k in enumerate(order)})
        want = sorted(pos[0], key=lambda k: (pos[0][k] + pos[1][k], pos[0][k]))
        assert fused(ex) == want
        changed += fused(ex) != alone(ex)
    assert changed > 0  # the teacher is heard
    with pytest.raises(ValueError, match="teacher_models"):
        filler_order("sasrec", splits["train"], own, tok, valid=splits["valid"], teachers=[ModelFillerOrder(other, tok)])


def test_a_fitted_sasrec_is_a_teacher_too(tok, splits, tmp_path: Path) -> None:
    """A ``scorer.pt`` in ``teacher_models`` joins the fusion with its own pool order (fused
    by hand here from the model's scores and the scorer's ranks); one fitted on other
    training data is refused, naming the file."""
    from fgrpo.baselines.sequential import SeqConfig, SequentialScorer
    from fgrpo.commands.sft import filler_order, load_teachers
    from fgrpo.models.idtiny import next_item_scores

    train = splits["train"]
    sasrec = SequentialScorer("sasrec", SeqConfig(seed=2, epochs=2, patience=0, hidden=16)).fit(train)
    saved = sasrec.save(tmp_path / "scorer.pt", train)
    (teacher,) = load_teachers([str(saved)], tok, "float32", train)
    own = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
    fused = filler_order("model", train, own, tok, teachers=[teacher])
    fused.prefetch(train[:8])
    changed = 0
    for ex in train[:8]:
        s = next_item_scores(own, tok, [ex])[0]
        mine = sorted(range(1, ex.num_candidates + 1), key=lambda k, s=s: -s[k - 1])
        pos = [{k: r for r, k in enumerate(o)} for o in (mine, sasrec.rank(ex))]
        assert teacher(ex) == sasrec.rank(ex)
        assert fused(ex) == sorted(pos[0], key=lambda k: (pos[0][k] + pos[1][k], pos[0][k]))
        changed += fused(ex) != mine
    assert changed > 0  # the scorer is heard
    with pytest.raises(ValueError, match=r"teacher_models.*scorer\.pt.*other training data"):
        load_teachers([str(saved)], tok, "float32", train[: len(train) // 2])


def test_sft_with_teacher_models_checks_their_tokenizer(splits, tmp_path: Path) -> None:
    """End to end: `fgrpo sft` reads ``teacher_models`` folders, frozen, and scorer.pt files;
    a folder whose tokenizer names other items is refused by path; the key needs a
    model-order policy."""
    from fgrpo.baselines.sequential import SeqConfig, SequentialScorer
    from fgrpo.commands.pretrain_items import run_pretrain_items
    from fgrpo.commands.sft import load_teachers, run_sft
    from fgrpo.config.commands import PretrainItemsConfig, SFTConfig
    from fgrpo.models.loading import load_tokenizer

    data = tmp_path / "data"
    for name, exs in splits.items():
        write_jsonl(exs, data / f"{name}.jsonl")
    common = {"dataset": str(data), "hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_steps": 2}
    a = run_pretrain_items(PretrainItemsConfig(**common, output_dir=str(tmp_path / "a"), seed=0))
    b = run_pretrain_items(PretrainItemsConfig(**common, output_dir=str(tmp_path / "b"), seed=1))
    fit = SequentialScorer("sasrec", SeqConfig(seed=0, epochs=1, patience=0, hidden=16)).fit(splits["train"])
    pt = fit.save(tmp_path / "scorer.pt", splits["train"])  # a teacher fitted on the train split sft reads
    cfg = SFTConfig(model=str(a), dataset=str(data), output_dir=str(tmp_path / "sft"), max_steps=2, batch_size=4,
                    slate_size=3, max_slate=3, max_rank=2, filler_policy="model", slate_order="teacher",
                    constrained_loss=True, teacher_models=[str(b), str(pt)], log_every=1,
                    soft_targets=0.5)  # fmt: skip  (soft targets: the three teachers' pool distributions)
    cfg.validate()
    assert (run_sft(cfg) / "config.json").is_file()
    (teacher,) = load_teachers([str(b)], load_tokenizer(str(a)), "float32")
    assert not any(p.requires_grad for p in teacher.model.parameters())
    assert len(load_teachers([str(a), str(b)], load_tokenizer(str(a)), "float32", own=str(a))) == 1  # own counted once
    foreign = tmp_path / "foreign"
    build_item_tokenizer([str(i) for i in range(100, 140)]).save_pretrained(foreign)
    with pytest.raises(ValueError, match="foreign.*another tokenizer"):
        load_teachers([str(foreign)], load_tokenizer(str(a)), "float32")
    with pytest.raises(ValueError, match="teacher_models"):
        SFTConfig(model=str(a), dataset=str(data), filler_policy="sasrec", teacher_models=[str(b)]).validate()
