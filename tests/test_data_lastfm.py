"""LastFM: LLaRA's split with our pools, S-DPO's fixed pools, the names, the safe pickle reader.

Reads the real files from ../shared/data/lastfm (or $FGRPO_SHARED_DATA/lastfm) and skips
without them; they may not be copied into the repository. Expected counts are those of
../shared/data/lastfm/SOURCES.md. The training split is subsampled (max_examples) where a
test needs only the pools, so that the file runs in seconds.
"""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fgrpo.commands.prepare import run_prepare
from fgrpo.config import ConfigError, load_config
from fgrpo.config.commands import PrepareConfig
from fgrpo.data import lastfm
from fgrpo.data.pickled_frame import read_frame
from fgrpo.data.schema import DataError, Example, read_jsonl

REPO = Path(__file__).resolve().parents[1]
FILES = ("train.jsonl", "valid.jsonl", "test.jsonl", "manifest.json")
PAD = 4606


def shared_lastfm() -> Path:
    env = os.environ.get("FGRPO_SHARED_DATA")
    root = (Path(env) if env else REPO.parent / "shared" / "data") / "lastfm"
    if not (root / "llara").is_dir():
        pytest.skip(f"shared data not found: {root} (set FGRPO_SHARED_DATA to its folder)")
    return root


def prepare(out: Path, protocol: str, max_examples: int | None = 1000, **kw) -> dict:
    c = PrepareConfig(
        dataset="lastfm",
        protocol=protocol,  # type: ignore[arg-type]
        input_path=str(shared_lastfm()),
        output_dir=str(out),
        max_examples=max_examples,
        **kw,
    )
    c.validate()
    return run_prepare(c)


@pytest.fixture(scope="module")
def llara_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lastfm_llara")
    prepare(out, "llara")
    return out


@pytest.fixture(scope="module")
def sdpo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lastfm_sdpo")
    prepare(out, "sdpo_pools", max_examples=3000)  # keeps all 2,767 / 2,495 pools
    return out


def user_items(path: Path) -> list[set[str]]:
    """Every item of each user of a file of every prefix (a user starts at an empty
    history): written independently of the reader, from the raw columns."""
    cols = read_frame(path)
    users: list[set[str]] = []
    for seq, nxt in zip(cols["seq"], cols["next"], strict=True):
        items = [str(i) for i in seq if i != PAD]
        if not items:
            users.append(set())
        users[-1].update([*items, str(nxt)])
    return users


def check_pools(examples: list[Example]) -> Counter:
    """20 distinct candidates, exactly one relevant, in the pool; the target's positions."""
    positions: Counter = Counter()
    for ex in examples:
        ids = [c.id for c in ex.candidates]
        assert len(ids) == 20 and len(set(ids)) == 20, ex.id
        relevant = [i for i, g in ex.relevance.items() if g > 0]
        assert len(relevant) == 1 and relevant[0] in ids, ex.id
        positions[ids.index(relevant[0])] += 1
    return positions


# --------------------------------------------------------------------------- names


def test_names_exact_and_commas_kept_whole() -> None:
    root = shared_lastfm()
    names = lastfm.read_names(root / "llara" / "id2name.txt")
    assert len(names) == 4606 and names["0"] == "Morcheeba"
    assert names["614"] == "Florence + the Machine" and names["2389"] == "+44"
    assert sum(", " in n for n in names.values()) == 14
    assert names["1"] != names["0"] and "Crosby, Stills, Nash & Young" in names.values()
    napo = lastfm.read_names(root / "napo" / "id2name.txt")
    assert {k for k in names if names[k] != napo[k]} == {"614", "2389"}
    assert napo["614"] == "Florence and the Machine" and napo["2389"] == "Plus 44"


def test_names_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "id2name.txt"
    path.write_bytes(b"0::A, B\r\n1::  C  \r\n")
    assert lastfm.read_names(path) == {"0": "A, B", "1": "  C  "}  # exactly as written
    path.write_text("0::A\n1::A\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"id2name.txt:2: field 'name': 'A' is also item '0'"):
        lastfm.read_names(path)
    path.write_text("0::A\nx::B\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"id2name.txt:2: field 'id': not an item id"):
        lastfm.read_names(path)


def test_comma_names_reach_the_prompts_whole(llara_dir: Path) -> None:
    names = set(lastfm.read_names(shared_lastfm() / "llara" / "id2name.txt").values())
    comma = {n for n in names if ", " in n}
    shown: set[str] = set()
    for split in ("train", "valid", "test"):
        for ex in read_jsonl(llara_dir / f"{split}.jsonl"):
            lines = ex.query.split("\n")
            assert all(line in names for line in lines), ex.id
            shown.update(x for x in lines + [c.text for c in ex.candidates] if x in comma)
    assert len(shown) >= 5  # several of the 14 appear, each as one whole line / candidate


# --------------------------------------------------------------------------- llara


def test_llara_rows_and_counts() -> None:
    stats: dict[str, int] = {}
    rows, titles, files = lastfm.load_llara(shared_lastfm(), stats)
    assert {s: len(r) for s, r in rows.items()} == {"train": 47872, "valid": 122, "test": 122}
    assert stats == {"skipped_train_rows_short_history": 50800 - 47872}
    assert len({r.user for r in rows["train"]}) == 976
    assert {r.user for r in rows["test"]} == {f"test-u{k}" for k in range(122)}
    first = rows["test"][0]  # SOURCES.md's example row
    assert first.seq == ["392", "225", "234", "576", "577", "272"] and first.next == "578"
    assert [titles[i] for i in first.seq[:2]] == ["Kylie Minogue", "Avril Lavigne"]
    assert sorted(f.name for f in files) == sorted(
        ["id2name.txt", "train_data.df", "Val_data.df", "Test_data.df"]
        + ["Val_data.df", "Test_data.df"]
    )


def test_llara_pools(llara_dir: Path) -> None:
    root = shared_lastfm()
    manifest = json.loads((llara_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 1000, "valid": 122, "test": 122}
    assert manifest["task"] == "music"
    assert set(manifest["inputs_sha256"]) == {
        "llara/id2name.txt",
        "llara/train_data.df",
        "llara/Val_data.df",
        "llara/Test_data.df",
        "napo/Val_data.df",
        "napo/Test_data.df",
    }
    assert manifest["inputs_sha256"]["llara/train_data.df"].startswith("7db71a60d3da4c44")
    positions: Counter = Counter()
    for split, napo_file in (("valid", "Val_data.df"), ("test", "Test_data.df")):
        examples = read_jsonl(llara_dir / f"{split}.jsonl")
        positions += check_pools(examples)
        whole = user_items(root / "napo" / napo_file)
        assert len(whole) == 122
        hits_beyond_window = 0
        for k, ex in enumerate(examples):
            (target,) = ex.relevance
            negatives = {c.id for c in ex.candidates} - {target}
            assert not negatives & whole[k], ex.id  # outside the user's whole history
            window = set(ex.meta["history_ids"]) | {target}
            hits_beyond_window += len(whole[k] - window) > 0
        assert hits_beyond_window > 50  # the whole history is larger than the row's window
    # 244 targets over 20 positions: spread, never pinned to one slot
    assert len(positions) >= 18 and max(positions.values()) < 30
    train = read_jsonl(llara_dir / "train.jsonl")
    assert len(check_pools(train)) == 20
    whole_train = user_items(root / "llara" / "train_data.df")
    for ex in train:
        (target,) = ex.relevance
        user = int(ex.meta["user"].removeprefix("train-u"))
        assert not ({c.id for c in ex.candidates} - {target}) & whole_train[user], ex.id
        assert ex.meta["position"] >= len(ex.meta["history_ids"]) >= 3


def test_llara_deterministic(tmp_path: Path, llara_dir: Path) -> None:
    prepare(tmp_path / "again", "llara")
    for name in FILES[:3]:
        assert (tmp_path / "again" / name).read_bytes() == (llara_dir / name).read_bytes()
    prepare(tmp_path / "seed1", "llara", seed=1)
    assert (tmp_path / "seed1" / "test.jsonl").read_bytes() != (
        llara_dir / "test.jsonl"
    ).read_bytes()


# --------------------------------------------------------------------------- sdpo_pools


def test_sdpo_pools_as_given(sdpo_dir: Path) -> None:
    root = shared_lastfm()
    manifest = json.loads((sdpo_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 3000, "valid": 2767, "test": 2495}
    assert "sdpo/lastfm-test.json" in manifest["inputs_sha256"]
    for split, name in (("valid", "lastfm-val.json"), ("test", "lastfm-test.json")):
        records = json.loads((root / "sdpo" / name).read_text(encoding="utf-8"))
        examples = read_jsonl(sdpo_dir / f"{split}.jsonl")
        positions = check_pools(examples)
        assert len(positions) == 20 and max(positions.values()) < 0.1 * len(examples)
        for rec, ex in zip(records, examples, strict=True):
            assert [c.text for c in ex.candidates] == rec["itemList"]  # same order
            (target,) = ex.relevance
            assert {c.id: c.text for c in ex.candidates}[target] == rec["trueSelection"]
            assert ex.query == rec["historyList"].replace("::", "\n")
    test = read_jsonl(sdpo_dir / "test.jsonl")
    assert test[0].meta["user"] == "test-u0" and test[-1].meta["user"] == "test-u121"


def test_sdpo_misaligned_pool_is_refused(tmp_path: Path) -> None:
    root = shared_lastfm()
    fake = tmp_path / "lastfm"
    (fake / "sdpo").mkdir(parents=True)
    (fake / "napo").symlink_to(root / "napo")
    (fake / "sdpo" / "lastfm-val.json").symlink_to(root / "sdpo" / "lastfm-val.json")
    records = json.loads((root / "sdpo" / "lastfm-test.json").read_text(encoding="utf-8"))
    records[7]["itemList"][3] = "No Such Artist"
    (fake / "sdpo" / "lastfm-test.json").write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(DataError, match=r"lastfm-test.json:record 7: field 'itemList': 'No Such"):
        lastfm.load_sdpo(fake, 20)
    records[7] = {**records[8]}
    (fake / "sdpo" / "lastfm-test.json").write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(DataError, match=r"record 7: history/target differ from .*Test_data.df"):
        lastfm.load_sdpo(fake, 20)


def test_protocol_config() -> None:
    with pytest.raises(ConfigError, match="protocol 'sdpo_pools' is for dataset lastfm only"):
        load_config(PrepareConfig, None, ["dataset=ml1m", "input_path=x", "protocol=sdpo_pools"])
    for name, protocol in (("prepare_lastfm", "llara"), ("prepare_lastfm_sdpo", "sdpo_pools")):
        c = load_config(PrepareConfig, REPO / "configs" / f"{name}.yaml")
        assert (c.dataset, c.protocol, c.pool_size) == ("lastfm", protocol, 20)
        assert c.input_path == "../shared/data/lastfm"


# --------------------------------------------------------------------------- safe loading


class _RunsCode:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # what a hostile .df does: call os.system on load
        return (os.system, (self.command,))


def test_real_pickles_read_without_pandas() -> None:
    root = shared_lastfm()
    for folder, rows in (("llara", 122), ("napo", 2861)):  # pandas 2 / protocol 5, pandas 1 / 4
        cols = read_frame(root / folder / "Test_data.df")
        assert list(cols) == ["seq", "len_seq", "next"] and len(cols["next"]) == rows
        assert all(type(s) is list and len(s) == 10 for s in cols["seq"])
        assert all(type(v) is int for v in cols["len_seq"] + cols["next"])


def test_code_running_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "Test_data.df"
    path.write_bytes(pickle.dumps(_RunsCode(f"touch {marker}")))
    with pytest.raises(DataError, match=r"Test_data.df: refused to unpickle global 'posix.system'"):
        read_frame(path)
    assert not marker.exists()
    # hidden inside an object array of lists, as a DataFrame cell would hold it
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = [1, _RunsCode(f"touch {marker}")]
    path.write_bytes(pickle.dumps(cell))
    with pytest.raises(DataError, match=r"refused to unpickle global 'posix.system'"):
        read_frame(path)
    path.write_bytes(pickle.dumps(eval))
    with pytest.raises(DataError, match=r"refused to unpickle global 'builtins.eval'"):
        read_frame(path)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="Test_data.df: not a pickled pandas DataFrame"):
        read_frame(path)
    path.write_bytes(b"\x80\x05garbage")
    with pytest.raises(DataError, match="Test_data.df: not a readable DataFrame pickle"):
        read_frame(path)
    assert not marker.exists()


def test_prepare_refuses_a_hostile_df(tmp_path: Path) -> None:
    root = shared_lastfm()
    fake = tmp_path / "lastfm"
    (fake / "llara").mkdir(parents=True)
    (fake / "napo").symlink_to(root / "napo")
    for name in ("id2name.txt", "train_data.df", "Test_data.df"):
        (fake / "llara" / name).symlink_to(root / "llara" / name)
    marker = tmp_path / "MARKER"
    (fake / "llara" / "Val_data.df").write_bytes(pickle.dumps(_RunsCode(f"touch {marker}")))
    c = PrepareConfig(dataset="lastfm", input_path=str(fake), output_dir=str(tmp_path / "out"))
    c.validate()
    with pytest.raises(
        DataError, match=r"llara/Val_data.df: refused to unpickle global 'posix.system'"
    ):
        run_prepare(c)
    assert not marker.exists() and not (tmp_path / "out" / "test.jsonl").exists()
