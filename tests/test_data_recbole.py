"""RecBole atomic and sequence files, Hugging Face datasets, and own file names for MovieLens:
hand-made tiny inputs in tmp_path, built through `fgrpo prepare`'s library path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fgrpo.commands.prepare import run_prepare
from fgrpo.config.commands import PrepareConfig
from fgrpo.data import recbole
from fgrpo.data.schema import DataError, read_jsonl

N_ITEMS = 30
ATOMIC_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
SEQ_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def write_item_file(path: Path, n: int = N_ITEMS) -> None:
    path.write_text(
        "item_id:token\ttitle:token_seq\n" + "".join(f"i{k}\tGame {k}\n" for k in range(1, n + 1))
    )


def user_sequences() -> dict[str, list[str]]:
    """Three users; u2's items are written out of time order in the atomic file."""
    return {
        "u1": ["i1", "i2", "i3", "i4", "i5"],
        "u2": ["i6", "i7", "i8", "i9"],
        "u3": ["i10", "i11", "i12"],
    }


def write_atomic(folder: Path, with_items: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for user, seq in user_sequences().items():
        rows += [(user, item, 100 + 10 * t) for t, item in enumerate(seq)]
    rows = rows[::-1]  # file order is not time order
    (folder / "games.inter").write_text(
        ATOMIC_HEADER + "".join(f"{u}\t{i}\t5\t{ts}\n" for u, i, ts in rows)
    )
    if with_items:
        write_item_file(folder / "games.item")
    return folder


def write_sequence(folder: Path) -> Path:
    """LLMRank-style Games.{train,valid,test}.inter: prefixes of one sequence per user."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": [], "valid": [], "test": []}
    for user, seq in user_sequences().items():
        n = len(seq)
        for t in range(1, n - 2):
            parts["train"].append(f"{user}\t{' '.join(seq[:t])}\t{seq[t]}\n")
        parts["valid"].append(f"{user}\t{' '.join(seq[: n - 2])}\t{seq[n - 2]}\n")
        parts["test"].append(f"{user}\t{' '.join(seq[: n - 1])}\t{seq[n - 1]}\n")
    for part, lines in parts.items():
        (folder / f"Games.{part}.inter").write_text(SEQ_HEADER + "".join(lines))
    write_item_file(folder / "Games.item")
    return folder


def prepare(tmp_path: Path, name: str, **kw) -> tuple[dict, dict[str, list]]:
    out = tmp_path / f"out-{name}"
    cfg = PrepareConfig(output_dir=str(out), pool_size=5, **kw)
    manifest = run_prepare(cfg)
    return manifest, {s: read_jsonl(out / f"{s}.jsonl") for s in ("train", "valid", "test")}


def targets(examples: list) -> dict[str, str]:
    return {ex.meta["user"]: next(iter(ex.relevance)) for ex in examples}


def check_protocol(splits: dict[str, list]) -> None:
    seqs = user_sequences()
    # leave-last-two-out: test = last item, valid = second to last, train = positions 1..n-3
    assert targets(splits["test"]) == {u: s[-1] for u, s in seqs.items()}
    assert targets(splits["valid"]) == {u: s[-2] for u, s in seqs.items()}
    assert len(splits["train"]) == sum(len(s) - 3 for s in seqs.values())
    held_out = {
        (ex.meta["user"], t) for s in ("valid", "test") for ex in splits[s] for t in ex.relevance
    }
    for ex in splits["train"]:  # no valid/test item is a training target or in a history
        assert all((ex.meta["user"], t) not in held_out for t in ex.relevance)
        assert all((ex.meta["user"], h) not in held_out for h in ex.meta["history_ids"])
    for exs in splits.values():
        for ex in exs:
            assert ex.num_candidates == 5
            negatives = [c.id for c in ex.candidates if c.id not in ex.relevance]
            assert not set(negatives) & set(seqs[ex.meta["user"]])  # outside the user's history


def test_atomic_files_follow_the_movielens_protocol(tmp_path: Path) -> None:
    folder = write_atomic(tmp_path / "raw")
    manifest, splits = prepare(
        tmp_path, "a", dataset="recbole", input_path=str(folder), task="games"
    )
    check_protocol(splits)
    assert manifest["counts"] == {"train": 3, "valid": 3, "test": 3}
    assert set(manifest["inputs_sha256"]) == {"games.inter", "games.item"}
    ex = splits["test"][0]
    assert ex.task == "games" and ex.query.split("\n")[-1] == "Game 4"  # u1's history, titles
    # determinism: the same seed gives the same bytes
    _, again = prepare(tmp_path, "b", dataset="recbole", input_path=str(folder), task="games")
    assert (tmp_path / "out-a" / "train.jsonl").read_bytes() == (
        tmp_path / "out-b" / "train.jsonl"
    ).read_bytes()
    _, other = prepare(tmp_path, "c", dataset="recbole", input_path=str(folder), seed=1)
    assert [c.id for c in other["test"][0].candidates] != [c.id for c in ex.candidates]


def test_atomic_without_item_file_shows_ids(tmp_path: Path) -> None:
    folder = write_atomic(tmp_path / "raw", with_items=False)
    manifest, splits = prepare(tmp_path, "a", dataset="recbole", input_path=str(folder))
    assert splits["test"][0].candidates[0].text.startswith("i")
    assert manifest["stats"]["items_text_is_id"] == 12


def test_sequence_files_give_back_the_shipped_split(tmp_path: Path) -> None:
    folder = write_sequence(tmp_path / "Games")
    manifest, splits = prepare(tmp_path, "s", dataset="recbole", input_path=str(folder))
    check_protocol(splits)
    assert len(manifest["inputs_sha256"]) == 4


def test_one_sequence_file_takes_the_longest_row(tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    rows = [f"{u}\t{' '.join(s[:-1])}\t{s[-1]}\n" for u, s in user_sequences().items()]
    rows.append("u1\ti1 i2\ti3\n")  # a shorter prefix, after the full row: not taken
    (folder / "x.inter").write_text(SEQ_HEADER + "".join(rows))
    write_item_file(folder / "x.item")
    _, splits = prepare(tmp_path, "o", dataset="recbole", input_path=str(folder))
    check_protocol(splits)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("u9\ti99\t5\t1\n", r"games.inter:2: field 'item_id': item 'i99' is not in games.item"),
        ("u9\ti1\t5\tsoon\n", r"games.inter:2: field 'timestamp': not a number: 'soon'"),
        ("\ti1\t5\t1\n", r"games.inter:2: field 'user_id' is empty"),
        ("u9\ti1\t5\n", r"games.inter:2: expected 4 tab-separated fields"),
    ],
)
def test_bad_atomic_row_names_file_line_field(tmp_path: Path, line: str, error: str) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "games.inter").write_text(ATOMIC_HEADER + line)
    write_item_file(folder / "games.item")
    with pytest.raises(DataError, match=error):
        recbole.load_recbole(folder)
    stats: dict[str, int] = {}
    recbole.load_recbole(folder, skip_invalid=True, stats=stats)
    assert stats["skipped_bad_rows"] == 1


def test_bad_sequence_row_and_missing_files(tmp_path: Path) -> None:
    folder = write_sequence(tmp_path / "Games")
    with (folder / "Games.valid.inter").open("a") as fh:
        fh.write("u7\ti1 i404\ti2\n")
    with pytest.raises(
        DataError, match=r"Games.valid.inter:5: field 'item_id_list\[1\]': item 'i404'"
    ):
        recbole.load_recbole(folder)
    (folder / "Games.test.inter").unlink()
    with pytest.raises(DataError, match=r"not the test part"):
        recbole.load_recbole(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"found none; set key 'interactions_file'"):
        recbole.load_recbole(tmp_path / "empty")


def test_own_file_names_for_movielens(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "my_ratings.tsv").write_text(
        ATOMIC_HEADER + "".join(f"{u}\t{i}\t4\t{10 * i + u}\n" for u in (1, 2) for i in range(1, 6))
    )
    (folder / "my_movies.tsv").write_text(
        "item_id:token\tmovie_title:token_seq\n"
        + "".join(f"{k}\tMovie {k}\n" for k in range(1, 31))
    )
    cfg = dict(dataset="ml100k", input_path=str(folder))
    with pytest.raises(
        DataError,
        match=r"ml-100k.item: file not found \(looked for ml-100k.item.*holds my_movies.tsv, my_ratings.tsv",
    ):
        prepare(tmp_path, "m0", **cfg)
    _, splits = prepare(
        tmp_path, "m", **cfg, interactions_file="my_ratings.tsv", items_file="my_movies.tsv"
    )
    assert len(splits["test"]) == 2
    with pytest.raises(
        DataError, match=r"nope.tsv: file not found \(looked for nope.tsv, key 'items_file'"
    ):
        prepare(tmp_path, "m2", **cfg, interactions_file="my_ratings.tsv", items_file="nope.tsv")


# --------------------------------------------------------------------------- datasets


def _hf_examples() -> dict[str, list]:
    def row(k: int) -> dict:
        return {
            "id": f"q{k}",
            "query": f"question {k}",
            "candidates": [{"id": f"p{k}-{j}", "text": f"passage {j}"} for j in range(4)],
            "relevance": [f"p{k}-{k % 4}"],
        }

    return {"train": [row(k) for k in range(6)], "test": [row(k) for k in range(6, 8)]}


def test_saved_dataset_dict_of_examples(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = _hf_examples()
    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in rows.items()})
    dd.save_to_disk(str(tmp_path / "hf"))
    manifest, splits = prepare(
        tmp_path, "h", dataset="hf_dataset", input_path=str(tmp_path / "hf"), task="passages"
    )
    assert manifest["counts"] == {"train": 6, "valid": 0, "test": 2}
    assert [ex.id for ex in splits["test"]] == ["q6", "q7"]
    assert splits["test"][1].relevance == {"p7-3": 1} and splits["test"][1].task == "passages"
    assert manifest["inputs_sha256"]  # the saved folder's files are hashed


def test_dataset_in_python_split_by_seed_and_bad_row(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = _hf_examples()["train"] * 1
    rows = [dict(r, id=f"x{k}") for k, r in enumerate(rows + rows)]  # 12 rows
    ds = datasets.Dataset.from_list(rows)
    cfg = PrepareConfig(
        dataset="hf_dataset",
        output_dir=str(tmp_path / "o"),
        valid_fraction=0.25,
        test_fraction=0.25,
    )
    manifest = run_prepare(cfg, hf_data=ds)
    assert manifest["counts"] == {"train": 6, "valid": 3, "test": 3}
    ids = [
        json.loads(line)["id"]
        for s in ("train", "valid", "test")
        for line in (tmp_path / "o" / f"{s}.jsonl").open()
    ]
    assert sorted(ids) == sorted(r["id"] for r in rows)  # disjoint and complete
    bad = datasets.Dataset.from_list([*rows[:3], dict(rows[3], relevance=["nowhere"])])
    with pytest.raises(
        DataError,
        match=r"<datasets.Dataset>:row 3: field 'relevance': id 'nowhere' is not in the candidate pool",
    ):
        run_prepare(cfg, hf_data=bad)


def test_saved_dataset_of_interactions(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    log = [
        {"uid": u, "iid": i, "ts": 10 * t, "name": f"Game {i[1:]}"}
        for u, s in user_sequences().items()
        for t, i in enumerate(s)
    ]
    catalogue = [
        {"uid": "u0", "iid": f"i{k}", "ts": k, "name": f"Game {k}"} for k in range(13, N_ITEMS + 1)
    ]
    datasets.Dataset.from_list(log + catalogue).save_to_disk(str(tmp_path / "hf"))
    keys = dict(user_field="uid", item_field="iid", time_field="ts", item_text_field="name")
    _, splits = prepare(
        tmp_path, "i", dataset="hf_dataset", input_path=str(tmp_path / "hf"), **keys
    )
    splits = {s: [ex for ex in exs if ex.meta["user"] != "u0"] for s, exs in splits.items()}
    check_protocol(splits)
    assert splits["test"][0].query.split("\n")[-1] == "Game 4"
    datasets.Dataset.from_list([{"uid": "u1", "iid": "i1", "ts": "later"}]).save_to_disk(
        str(tmp_path / "bad")
    )
    with pytest.raises(DataError, match=r"bad:row 0: field 'ts': not a number"):
        prepare(tmp_path, "b", dataset="hf_dataset", input_path=str(tmp_path / "bad"), **keys)
