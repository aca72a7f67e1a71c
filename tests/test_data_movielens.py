"""Sequential-recommendation builders: MovieLens-100K (RecBole atomic), -1M, LLaRA exports.

Fixtures are generated in tmp_path. One test fetches the real MovieLens-100K from the
recbole==1.2.1 wheel (cached in $FGRPO_CACHE or ~/.cache/fgrpo) and skips without network.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from fgrpo.data import fetch, next_item
from fgrpo.data import movielens as ml
from fgrpo.data.schema import DataError, example_from_json

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"


def write_ml100k(folder: Path, inter: list[tuple], items: dict[int, tuple[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ml-100k.item").write_text(
        ITEM_HEADER + "".join(f"{i}\t{t}\t{y}\tDrama\n" for i, (t, y) in items.items()),
        encoding="utf-8",
    )
    (folder / "ml-100k.inter").write_text(
        INTER_HEADER + "".join(f"{u}\t{i}\t{r}\t{ts}\n" for u, i, r, ts in inter),
        encoding="utf-8",
    )
    return folder


def catalogue(n: int = 40) -> dict[int, tuple[str, str]]:
    return {i: (f"Movie {i}", str(1980 + i % 20)) for i in range(1, n + 1)}


# user 1: 7 interactions with a timestamp tie (items 12 and 3 at t=500 -> 3 first)
# user 2: 2 interactions (too short); user 10: 4 interactions
INTERACTIONS = [
    (1, 5, 4, 100),
    (1, 7, 3, 200),
    (1, 12, 5, 500),
    (1, 3, 5, 500),
    (1, 9, 1, 300),
    (1, 20, 2, 900),
    (1, 14, 4, 800),
    (2, 1, 3, 10),
    (2, 2, 3, 20),
    (10, 30, 5, 40),
    (10, 31, 5, 30),
    (10, 32, 5, 20),
    (10, 33, 5, 10),
]
USER1_ORDER = ["5", "7", "9", "3", "12", "14", "20"]


@pytest.fixture
def ml_dir(tmp_path: Path) -> Path:
    return write_ml100k(tmp_path / "ml", INTERACTIONS, catalogue())


def build(folder: Path, **kw):
    stats: dict[str, int] = {}
    data = ml.load_ml100k(folder, stats=stats)
    kw.setdefault("pool_size", 20)
    return next_item.build_sequential(data, stats=stats, **kw), stats, data


def by_id(examples):
    return {ex.id: ex for ex in examples}


def test_leave_one_out_protocol(ml_dir: Path) -> None:
    splits, stats, data = build(ml_dir, history_len=3)
    assert data.titles["5"] == "Movie 5 (1985)"
    test, valid, train = by_id(splits["test"]), by_id(splits["valid"]), by_id(splits["train"])
    assert set(test) == {"u1-6", "u10-3"} and set(valid) == {"u1-5", "u10-2"}
    assert sorted(train) == sorted([f"u1-{t}" for t in range(1, 5)] + ["u10-1"])
    ex = test["u1-6"]
    assert ex.task == "movies"
    assert ex.meta == {"user": "1", "position": 6, "history_ids": ["3", "12", "14"]}
    assert ex.relevance == {"20": 1}
    # last history_len titles, most recent last, one a line
    assert ex.query == "Movie 3 (1983)\nMovie 12 (1992)\nMovie 14 (1994)"
    assert valid["u1-5"].relevance == {"14": 1}
    assert train["u1-1"].query == data.titles["5"]  # history = the single first item
    assert train["u1-1"].relevance == {"7": 1}
    assert test["u10-3"].relevance == {"30": 1}  # sorted by timestamp, not by file order
    history1 = set(USER1_ORDER)
    for exs in splits.values():
        for e in exs:
            ids = [c.id for c in e.candidates]
            assert len(ids) == 20 == len(set(ids))
            target = next(iter(e.relevance))
            assert target in ids
            user_hist = history1 if e.meta["user"] == "1" else {"30", "31", "32", "33"}
            assert not (set(ids) - {target}) & user_hist  # negatives avoid the full history
            assert all(c.text == data.titles[c.id] for c in e.candidates)
            example_from_json(e.to_json(), e.id)  # valid under the schema
    assert stats == {"skipped_users_too_short": 1}


def test_history_ids_align_with_query_titles(ml_dir: Path) -> None:
    """meta["history_ids"] lists the ids of the query's titles, in order (most recent last),
    so the id-based baselines see the same history as the LLM."""
    splits, _, data = build(ml_dir, history_len=4)
    for ex in [e for split in ml.SPLITS for e in splits[split]]:
        ids = ex.meta["history_ids"]
        assert ex.query.split(next_item.HISTORY_SEP) == [data.titles[i] for i in ids]
        if ex.meta["user"] == "1":
            t = ex.meta["position"]
            assert ids == USER1_ORDER[max(0, t - 4) : t]  # the window just before the target
            assert ex.relevance == {USER1_ORDER[t]: 1}
    assert by_id(splits["train"])["u1-1"].meta["history_ids"] == ["5"]
    assert by_id(splits["test"])["u1-6"].meta["history_ids"] == ["9", "3", "12", "14"]
    # survives the JSONL round trip the baselines read
    again = example_from_json(json.loads(json.dumps(splits["test"][0].to_json())), "w")
    assert again.meta["history_ids"] == splits["test"][0].meta["history_ids"]


def test_candidate_position_of_target_varies(ml_dir: Path) -> None:
    splits, _, _ = build(ml_dir)
    positions = {next(iter(e.relevant_numbers())) for exs in splits.values() for e in exs}
    assert len(positions) > 1  # shuffled, not always first


def test_timestamp_ties_broken_by_numeric_item_id(tmp_path: Path) -> None:
    inter = [(7, 12, 1, 5), (7, 3, 1, 5), (7, 100, 1, 5), (7, 4, 1, 1)]
    folder = write_ml100k(tmp_path / "ml", inter, catalogue(120))
    splits, _, _ = build(folder)
    assert splits["test"][0].relevance == {"100": 1}
    assert splits["valid"][0].relevance == {"12": 1}
    assert splits["train"][0].relevance == {"3": 1}


def test_max_train_per_user_keeps_most_recent(ml_dir: Path) -> None:
    splits, _, _ = build(ml_dir, max_train_per_user=2)
    assert sorted(e.id for e in splits["train"]) == ["u1-3", "u1-4", "u10-1"]
    splits0, _, _ = build(ml_dir, max_train_per_user=0)
    assert splits0["train"] == [] and len(splits0["test"]) == 2


def test_examples_do_not_depend_on_subsampling(ml_dir: Path) -> None:
    full, _, _ = build(ml_dir, seed=3)
    part, _, _ = build(ml_dir, seed=3, max_train_per_user=1, max_examples=1)
    for split in ml.SPLITS:
        assert len(part[split]) == 1
        assert part[split][0].to_json() == by_id(full[split])[part[split][0].id].to_json()


def test_deterministic_and_seed_dependent(ml_dir: Path) -> None:
    a, _, _ = build(ml_dir, seed=1)
    b, _, _ = build(ml_dir, seed=1)
    c, _, _ = build(ml_dir, seed=2)
    dump = lambda s: [e.to_json() for split in ml.SPLITS for e in s[split]]  # noqa: E731
    assert dump(a) == dump(b)
    assert dump(a) != dump(c)


def test_items_sharing_a_history_title_are_not_negatives(tmp_path: Path) -> None:
    items = catalogue(25)
    items[2] = ("Movie 1", items[1][1])  # same film listed twice under two ids
    inter = [(1, 1, 5, 1), (1, 5, 5, 2), (1, 6, 5, 3), (1, 7, 5, 4)]
    folder = write_ml100k(tmp_path / "ml", inter, items)
    splits, _, _ = build(folder, pool_size=20)  # 25 - 4 history - 1 twin = 20 >= 19
    for exs in splits.values():
        for e in exs:
            assert "2" not in {c.id for c in e.candidates}


def test_too_few_negatives_raises_or_skips(tmp_path: Path) -> None:
    inter = [(1, i, 5, i) for i in range(1, 8)] + [(10, i, 5, i) for i in (8, 9, 10)]
    folder = write_ml100k(tmp_path / "ml", inter, catalogue(25))  # user 1: 18 < 19 negatives
    data = ml.load_ml100k(folder)
    with pytest.raises(DataError, match=r"ml-100k.item: field 'pool_size'.*user '1'"):
        next_item.build_sequential(data, pool_size=20)
    stats: dict[str, int] = {}
    splits = next_item.build_sequential(data, pool_size=20, skip_invalid=True, stats=stats)
    assert stats["skipped_users_too_few_negatives"] == 1
    assert {e.meta["user"] for e in splits["test"]} == {"10"}


def test_bad_sizes_rejected(ml_dir: Path) -> None:
    data = ml.load_ml100k(ml_dir)
    with pytest.raises(ValueError, match="pool_size"):
        next_item.build_sequential(data, pool_size=1)
    with pytest.raises(ValueError, match="history_len"):
        next_item.build_sequential(data, history_len=0)


# --------------------------------------------------------------------------- bad input


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ml-100k.item: file not found"):
        ml.load_ml100k(tmp_path)
    (tmp_path / "ml-100k.item").write_text(ITEM_HEADER)
    with pytest.raises(DataError, match=r"ml-100k.inter: file not found"):
        ml.load_ml100k(tmp_path)


@pytest.mark.parametrize(
    ("inter_text", "pattern"),
    [
        ("user_id\titem_id\ttimestamp\n1\t2\t3\n", r"ml-100k.inter:1: header must be"),
        (
            "user_id:token\titem_id:token\trating:float\n1\t2\t3\n",
            r":1: field 'timestamp' is missing",
        ),
        (INTER_HEADER + "1\t2\t3\t4\n1\t2\t3\n", r"ml-100k.inter:3: expected 4 tab-separated"),
        (
            INTER_HEADER + "1\t2\t3\tyesterday\n",
            r"ml-100k.inter:2: field 'timestamp': not a number",
        ),
        (INTER_HEADER + "1\t999\t3\t4\n", r"ml-100k.inter:2: field 'item_id': item '999'"),
        (INTER_HEADER + " \t2\t3\t4\n", r"ml-100k.inter:2: field 'user_id' is empty"),
    ],
)
def test_bad_interactions(tmp_path: Path, inter_text: str, pattern: str) -> None:
    write_ml100k(tmp_path, [], catalogue())
    (tmp_path / "ml-100k.inter").write_text(inter_text)
    with pytest.raises(DataError, match=pattern):
        ml.load_ml100k(tmp_path)


def test_bad_items(tmp_path: Path) -> None:
    write_ml100k(tmp_path, [], catalogue(3))
    path = tmp_path / "ml-100k.item"
    path.write_text(path.read_text() + "2\tAgain\t1999\tDrama\n")
    with pytest.raises(DataError, match=r"ml-100k.item:5: field 'item_id': duplicate item '2'"):
        ml.load_ml100k(tmp_path)
    path.write_text(ITEM_HEADER + "1\t \t1999\tDrama\n")
    with pytest.raises(DataError, match=r"ml-100k.item:2: field 'movie_title' is empty"):
        ml.load_ml100k(tmp_path)


def test_skip_invalid_counts_bad_rows(ml_dir: Path) -> None:
    path = ml_dir / "ml-100k.inter"
    path.write_text(path.read_text() + "1\t2\t3\n1\t999\t3\t4\n1\t2\t3\tx\n")
    stats: dict[str, int] = {}
    data = ml.load_ml100k(ml_dir, skip_invalid=True, stats=stats)
    assert stats == {"skipped_bad_rows": 3}
    assert len(data.interactions) == len(INTERACTIONS)


# --------------------------------------------------------------------------- MovieLens-1M


def write_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    movies = [f"{i}::Film {i} (199{i % 10})::Drama|Comedy" for i in range(1, 31)]
    movies[0] = "1::Amélie (2001)::Comedy|Romance"
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    ratings = ["7::1::5::978300760", "7::3::4::978300761", "7::2::4::978300762", "9::4::3::1"]
    (folder / "ratings.dat").write_text("\n".join(ratings) + "\n")
    return folder


def test_ml1m(tmp_path: Path) -> None:
    data = ml.load_ml1m(write_ml1m(tmp_path / "ml1m"))
    assert data.titles["1"] == "Amélie (2001)"
    splits = next_item.build_sequential(data, pool_size=10)
    assert [e.relevance for e in splits["test"]] == [{"2": 1}]
    assert splits["test"][0].query == "Amélie (2001)\nFilm 3 (1993)"
    assert [e.relevance for e in splits["valid"]] == [{"3": 1}]
    assert splits["train"] == []  # 3 interactions: no earlier position is left


def test_ml1m_errors(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml1m")
    with (folder / "ratings.dat").open("a") as fh:
        fh.write("7::99::5::1\n")
    with pytest.raises(DataError, match=r"ratings.dat:5: field 'MovieID': item '99'"):
        ml.load_ml1m(folder)
    (folder / "ratings.dat").write_text("7::1::5\n")
    with pytest.raises(DataError, match=r"ratings.dat:1: expected 4 '::'-separated fields"):
        ml.load_ml1m(folder)
    (folder / "movies.dat").unlink()
    with pytest.raises(DataError, match="movies.dat: file not found"):
        ml.load_ml1m(folder)


# --------------------------------------------------------------------------- LLaRA


def write_llara(folder: Path, pad: int = 99) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "id2name.txt").write_text("".join(f"{i}::Artist {i}\n" for i in range(40)))
    train = [
        {"seq": [1, 2, 3, 4], "len_seq": 4, "next": 5},
        {"seq": [6, 7, pad, pad], "len_seq": 2, "next": 8},  # 2 history items: skipped
        {"seq": [[9, 5], [10, 4], [11, 3], [pad, 0]], "len_seq": 3, "next": [12, 5]},
    ]
    (folder / "train_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "Val_data.csv").write_text(
        'seq,len_seq,next\n"[(13, 4), (14, 5), (15, 1)]",3,16\n"[17, 18, 19, 20]",4,21\n'
    )
    (folder / "Test_data.jsonl").write_text(json.dumps({"seq": [22, 23, 24], "next": 25}) + "\n")
    return folder


def test_llara_exports(tmp_path: Path) -> None:
    stats: dict[str, int] = {}
    rows, titles, files = ml.load_llara(write_llara(tmp_path / "lastfm"), 99, stats=stats)
    assert [p.name for p in files] == [
        "id2name.txt",
        "train_data.jsonl",
        "Val_data.csv",
        "Test_data.jsonl",
    ]
    assert stats == {"skipped_rows_short_history": 1}
    assert [r.seq for r in rows["train"]] == [["1", "2", "3", "4"], ["9", "10", "11"]]
    assert [r.next for r in rows["valid"]] == ["16", "21"]
    splits = next_item.build_llara(rows, titles, task="music", pool_size=10, history_len=3)
    ex = splits["train"][0]
    assert ex.task == "music" and ex.id == "train-0"
    assert ex.meta == {"row": 0, "history_ids": ["2", "3", "4"]}
    assert ex.query == "Artist 2\nArtist 3\nArtist 4" and ex.relevance == {"5": 1}
    assert not {c.id for c in ex.candidates} & {"1", "2", "3", "4"}
    assert splits["valid"][0].relevance == {"16": 1} and len(splits["test"]) == 1
    again = next_item.build_llara(rows, titles, task="music", pool_size=10, history_len=3)
    assert [e.to_json() for e in again["train"]] == [e.to_json() for e in splits["train"]]


def test_llara_padding_needs_option(tmp_path: Path) -> None:
    folder = write_llara(tmp_path / "lastfm")
    with pytest.raises(
        DataError, match=r"train_data.jsonl:2: field 'seq\[2\]': item '99'.*padding"
    ):
        ml.load_llara(folder)


def test_llara_u_item_titles(tmp_path: Path) -> None:
    folder = write_llara(tmp_path / "movielens")
    (folder / "id2name.txt").unlink()
    (folder / "u.item").write_bytes(
        "".join(f"{i + 1}|Film {i} (1995)|01-Jan-1995||url|0\n" for i in range(40)).encode(
            "latin-1"
        )
    )
    rows, titles, _ = ml.load_llara(folder, 99)
    assert titles["0"] == "Film 0 (1995)"  # LLaRA shifts MovieLens ids by -1


def test_llara_errors(tmp_path: Path) -> None:
    folder = write_llara(tmp_path / "steam")
    (folder / "Test_data.jsonl").unlink()
    with pytest.raises(DataError, match=r"file not found for the test split"):
        ml.load_llara(folder, 99)
    (folder / "Test_data.jsonl").write_text('{"seq": [1, 2, 3]}\n{"seq": [1, 2, 3], "next": 77}\n')
    with pytest.raises(DataError, match=r"Test_data.jsonl:1: field 'next' is missing"):
        ml.load_llara(folder, 99)
    stats: dict[str, int] = {}
    rows, _, _ = ml.load_llara(folder, 99, skip_invalid=True, stats=stats)
    assert stats["skipped_bad_rows"] == 2 and rows["test"] == []
    (folder / "Test_data.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"Test_data.jsonl:1: not valid JSON"):
        ml.load_llara(folder, 99)
    (folder / "Val_data.csv").write_text("seq,len_seq\n[1],1\n")
    with pytest.raises(DataError, match=r"Val_data.csv:1: field 'next' is missing"):
        ml.load_llara(folder, 99)
    (folder / "id2name.txt").unlink()
    with pytest.raises(DataError, match=r"id2name.txt: file not found"):
        ml.load_llara(folder, 99)


# --------------------------------------------------------------------------- fetching


def fake_wheel(path: Path, inter: bytes, item: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(fetch.ML100K_MEMBERS["ml-100k.inter"], inter)
        zf.writestr(fetch.ML100K_MEMBERS["ml-100k.item"], item)
    return path


def test_fetch_from_wheel_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inter = (INTER_HEADER + "1\t1\t5\t1\n1\t2\t5\t2\n1\t3\t5\t3\n").encode()
    item = (ITEM_HEADER + "".join(f"{i}\tM{i}\t1990\tDrama\n" for i in range(1, 30))).encode()
    prefixes = {
        "ml-100k.inter": hashlib.sha256(inter).hexdigest()[:16],
        "ml-100k.item": hashlib.sha256(item).hexdigest()[:16],
    }
    monkeypatch.setattr(fetch, "ML100K_SHA256_PREFIX", prefixes)
    calls = []

    def download(dest: Path) -> Path:
        calls.append(dest)
        return fake_wheel(dest / fetch.RECBOLE_WHEEL, inter, item)

    monkeypatch.setattr(fetch, "_pip_download", download)
    cache = tmp_path / "cache"
    assert fetch.fetch_ml100k(cache) == cache
    assert (cache / "ml-100k.inter").read_bytes() == inter and len(calls) == 1
    assert (cache / fetch.RECBOLE_WHEEL).is_file()  # the wheel is kept
    fetch.fetch_ml100k(cache)
    assert len(calls) == 1  # valid cache reused, no download
    (cache / "ml-100k.item").write_text("damaged")
    fetch.fetch_ml100k(cache)
    assert len(calls) == 1 and (cache / "ml-100k.item").read_bytes() == item  # from the wheel
    assert len(ml.load_ml100k(cache).titles) == 29


def test_fetch_rejects_wrong_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        fetch, "_pip_download", lambda dest: fake_wheel(dest / fetch.RECBOLE_WHEEL, b"x", b"y")
    )
    cache = tmp_path / "cache"
    with pytest.raises(fetch.FetchError, match=r"ml-100k.inter' has sha256 .* expected 4edb74e2"):
        fetch.fetch_ml100k(cache)
    assert not (cache / fetch.RECBOLE_WHEEL).exists()  # a bad wheel is not kept


def test_fetch_reports_pip_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "RECBOLE_REQUIREMENT", "recbole==0.0.0.not-a-version")
    monkeypatch.setattr(fetch.sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(fetch.FetchError, match="could not run"):
        fetch.fetch_ml100k(tmp_path / "cache")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FGRPO_CACHE", str(tmp_path))
    assert fetch.default_cache_dir() == tmp_path / "ml-100k"
    monkeypatch.delenv("FGRPO_CACHE")
    assert fetch.default_cache_dir() == Path("~/.cache/fgrpo/ml-100k").expanduser()


def test_real_ml100k() -> None:
    """The real files from the recbole wheel (cached; skipped when pip cannot download)."""
    try:
        folder = fetch.fetch_ml100k()
    except fetch.FetchError as e:
        pytest.skip(f"MovieLens-100K unavailable (no network?): {e}")
    data = ml.load_ml100k(folder)
    assert len(data.interactions) == 100_000 and len(data.titles) == 1682
    assert data.titles["1"] == "Toy Story (1995)"
    stats: dict[str, int] = {}
    splits = next_item.build_sequential(data, max_train_per_user=1, stats=stats)
    assert {s: len(v) for s, v in splits.items()} == {"train": 943, "valid": 943, "test": 943}
    assert stats == {}
    for ex in splits["test"][:50]:
        assert ex.num_candidates == 20 and len(ex.query.split("\n")) == 10
        example_from_json(ex.to_json(), ex.id)
