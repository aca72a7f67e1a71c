"""The coverage-bound protocol: the next 3 interactions as the relevant set (num_targets=3).

Hand-worked ids on a small fixture, then properties on a seeded synthetic log with
timestamp ties: exact relevant counts, chronology and no leakage, pools, determinism, and
the user sequences the id-based models rebuild from the training rows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from fgrpo.baselines.sequential import user_sequences
from fgrpo.config.commands import PrepareConfig
from fgrpo.data import movielens as ml
from fgrpo.data import next_item
from fgrpo.data.schema import example_from_json
from fgrpo.trainer.pretrain import train_sequences

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"


def write_ml100k(folder: Path, inter: list[tuple], catalogue: dict[int, tuple[str, str]]) -> Path:
    """RecBole atomic files (as tests/test_data_movielens.py writes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{i}\t{t}\t{y}\tDrama\n" for i, (t, y) in catalogue.items())
    (folder / "ml-100k.item").write_text(ITEM_HEADER + lines, encoding="utf-8")
    rows = "".join(f"{u}\t{i}\t{r}\t{ts}\n" for u, i, r, ts in inter)
    (folder / "ml-100k.inter").write_text(INTER_HEADER + rows, encoding="utf-8")
    return folder

TWIN = ("Twin", "1990")  # items 58 and 59 share a title


def items(n: int = 60) -> dict[int, tuple[str, str]]:
    out = {i: (f"Movie {i}", str(1980 + i % 20)) for i in range(1, n + 1)}
    out[58] = out[59] = TWIN
    return out


def seq_rows(user: int, seq: list[int]) -> list[tuple]:
    return [(user, item, 4, 10 * (j + 1)) for j, item in enumerate(seq)]


USER1 = list(range(1, 13))  # 12 items: test 10-12, valid 7-9, train windows t = 1, 2, 3
USER4 = [20, 58, 59, *range(21, 29)]  # 11 items: the window at t = 1 repeats a title
INTER = (
    seq_rows(1, USER1)
    + seq_rows(2, list(range(30, 36)))  # 6 < 2*3 + 1 interactions: too short
    + seq_rows(3, [40, 41, 42, 43, 58, 59, 44, 45, 46, 47])  # valid targets 58, 59, 44 repeat a title
    + seq_rows(4, USER4)
)


def build(folder: Path, **kw):
    stats: dict[str, int] = {}
    data = ml.load_ml100k(folder, stats=stats)
    kw.setdefault("pool_size", 20)
    kw.setdefault("num_targets", 3)
    return next_item.build_sequential(data, stats=stats, **kw), stats


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_ml100k(tmp_path / "ml", INTER, items())


def by_id(examples):
    return {ex.id: ex for ex in examples}


def test_next3_protocol_by_hand(folder: Path) -> None:
    splits, stats = build(folder, history_len=3)
    test, valid, train = by_id(splits["test"]), by_id(splits["valid"]), by_id(splits["train"])
    assert set(test) == {"u1-9", "u4-8"} and set(valid) == {"u1-6", "u4-5"}
    assert sorted(train) == ["u1-1", "u1-2", "u1-3", "u4-2"]
    assert test["u1-9"].relevance == {"10": 1, "11": 1, "12": 1}
    assert test["u1-9"].meta == {"user": "1", "position": 9, "history_ids": ["7", "8", "9"], "target_ids": ["10", "11", "12"]}
    assert valid["u1-6"].relevance == {"7": 1, "8": 1, "9": 1}
    assert valid["u1-6"].meta["history_ids"] == ["4", "5", "6"]
    assert train["u1-1"].relevance == {"2": 1, "3": 1, "4": 1} and train["u1-1"].meta["history_ids"] == ["1"]
    assert train["u1-3"].relevance == {"4": 1, "5": 1, "6": 1}  # the last window ends before item 7
    assert train["u4-2"].meta["target_ids"] == ["59", "21", "22"]
    assert stats == {
        "skipped_users_too_short": 1,
        "skipped_users_repeated_eval_targets": 1,
        "skipped_train_windows_repeated_targets": 1,
    }


def test_order_grades(folder: Path) -> None:
    splits, _ = build(folder, target_grades="order")
    ex = by_id(splits["test"])["u1-9"]
    assert ex.relevance == {"10": 3, "11": 2, "12": 1}
    assert sorted(ex.grades(), reverse=True)[:4] == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="target_grades"):
        build(folder, target_grades="graded")


def synthetic_log(seed: int = 0, users: int = 40, catalogue: int = 400) -> list[tuple]:
    """Users of 5-40 interactions; timestamps drawn from few values, so many tie."""
    rng = random.Random(seed)
    rows = []
    for u in range(1, users + 1):
        for item in rng.sample(range(1, catalogue + 1), rng.randint(5, 40)):
            rows.append((u, item, 3, rng.randint(1, 15)))
    return rows


@pytest.fixture
def big(tmp_path: Path) -> Path:
    return write_ml100k(tmp_path / "syn", synthetic_log(), {i: (f"Film {i}", "2000") for i in range(1, 401)})


def chronological(folder: Path) -> dict[str, list[str]]:
    data = ml.load_ml100k(folder)
    out: dict[str, list] = {}
    for it in data.interactions:
        out.setdefault(it.user, []).append(it)
    return {u: [e.item for e in sorted(v, key=lambda e: (e.timestamp, ml.id_sort_key(e.item)))] for u, v in out.items()}


def test_exact_counts_pools_and_no_leakage(big: Path) -> None:
    splits, stats = build(big, history_len=10)
    seqs = chronological(big)
    assert stats.get("skipped_users_too_short", 0) == sum(len(s) < 7 for s in seqs.values()) > 0
    seen: dict[str, set[str]] = {}  # user -> items in any training row (target or history)
    for ex in splits["train"]:
        seen.setdefault(ex.meta["user"], set()).update(ex.meta["history_ids"], ex.meta["target_ids"])
    for split in ("valid", "test"):
        assert len({ex.meta["user"] for ex in splits[split]}) == len(splits[split])  # one per user
    for split, exs in splits.items():
        for ex in exs:
            seq = seqs[ex.meta["user"]]
            t = ex.meta["position"]
            targets = seq[t : t + 3]
            assert ex.meta["target_ids"] == targets and ex.relevance == dict.fromkeys(targets, 1)
            assert ex.meta["history_ids"] == seq[max(0, t - 10) : t]
            ids = [c.id for c in ex.candidates]
            assert len(ids) == 20 == len(set(ids)) == len({c.text for c in ex.candidates})
            assert sum(g > 0 for g in ex.grades()) == 3  # exactly 3 relevant candidates
            assert not (set(ids) - set(targets)) & set(seq)  # negatives outside the whole history
            n = len(seq)
            if split == "test":
                assert t == n - 3
            elif split == "valid":
                assert t == n - 6
            else:
                assert t >= 1 and t + 3 <= n - 6  # all 3 targets before the valid ones
            if split != "train":
                assert not set(targets) & seen.get(ex.meta["user"], set())  # no leakage into training
            example_from_json(ex.to_json(), ex.id)


def test_deterministic_and_seed_dependent(big: Path) -> None:
    def dump(seed: int) -> str:
        splits, _ = build(big, seed=seed)
        return json.dumps({s: [e.to_json() for e in exs] for s, exs in splits.items()})

    assert dump(0) == dump(0)
    assert dump(0) != dump(1)


def test_max_train_per_user_keeps_the_most_recent_windows(big: Path) -> None:
    full, _ = build(big)
    kept, _ = build(big, max_train_per_user=2)
    last_two: dict[str, list[int]] = {}
    for ex in full["train"]:
        last_two.setdefault(ex.meta["user"], []).append(ex.meta["position"])
    expected = sorted((u, t) for u, ts in last_two.items() for t in sorted(ts)[-2:])
    assert sorted((ex.meta["user"], ex.meta["position"]) for ex in kept["train"]) == expected


def test_id_models_rebuild_the_training_sequence(folder: Path) -> None:
    """Pretraining (id-tiny) and SASRec/GRU4Rec see each user's items before the valid ones."""
    splits, _ = build(folder)
    seqs = {s[0]: s for s in train_sequences(splits["train"])}
    assert seqs["1"] == [str(i) for i in range(1, 7)]
    assert seqs["20"] == ["20", "58", "59", "21", "22"]  # the skipped window (t = 1) is covered by t = 2
    assert sorted(map(tuple, user_sequences(splits["train"]))) == sorted(map(tuple, seqs.values()))


def test_config_checks() -> None:
    PrepareConfig(num_targets=3).validate()
    with pytest.raises(ValueError, match="num_targets"):
        PrepareConfig(num_targets=0).validate()
    with pytest.raises(ValueError, match="dataset ml100k or ml1m"):
        PrepareConfig(dataset="llara", input_path="x", num_targets=3).validate()
    with pytest.raises(ValueError, match="pool_size must exceed"):
        PrepareConfig(num_targets=3, pool_size=3).validate()


def test_committed_config() -> None:
    from fgrpo.config import load_config

    cfg = load_config(PrepareConfig, Path(__file__).resolve().parents[1] / "configs" / "prepare_ml100k_next3.yaml")
    assert (cfg.num_targets, cfg.pool_size, cfg.target_grades) == (3, 20, "binary")


def test_prepare_writes_the_next3_folder(folder: Path, tmp_path: Path) -> None:
    """Through `fgrpo prepare`'s library call: the config keys reach the builder, the manifest
    counts exactly 3 relevant per valid/test example and the skips, the bytes repeat."""
    from fgrpo.commands.prepare import run_prepare

    out = tmp_path / "out"
    c = PrepareConfig(dataset="ml100k", input_path=str(folder), output_dir=str(out), num_targets=3, history_len=3)
    manifest = run_prepare(c)
    assert manifest["counts"] == {"train": 4, "valid": 2, "test": 2}
    for split in ("valid", "test"):
        assert manifest["relevant_per_example"][split]["min"] == manifest["relevant_per_example"][split]["max"] == 3
    assert manifest["skipped"] == {
        "skipped_train_windows_repeated_targets": 1,
        "skipped_users_repeated_eval_targets": 1,
        "skipped_users_too_short": 1,
    }
    assert (manifest["config"]["num_targets"], manifest["config"]["target_grades"]) == (3, "binary")
    first = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    run_prepare(c)
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == first
    test = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert test[0]["relevance"] == {"10": 1, "11": 1, "12": 1}
