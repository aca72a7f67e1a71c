"""The prepare step: config, output files, manifest, determinism, the shipped configs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from fgrpo.commands.prepare import main, run_prepare
from fgrpo.config import ConfigError, field_help, load_config
from fgrpo.config.commands import PrepareConfig
from fgrpo.data.fetch import FetchError
from fgrpo.data.schema import DataError, read_jsonl

REPO = Path(__file__).resolve().parents[1]
FILES = ("train.jsonl", "valid.jsonl", "test.jsonl", "manifest.json")


def shared_data() -> Path:
    env = os.environ.get("FGRPO_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def write_ircot(path: Path, n: int = 20) -> Path:
    rows = []
    for q in range(n):
        ctx = [
            {
                "id": str(k),
                "title": f"T{q}-{k}",
                "paragraph_text": f"text of {q} {k} " * 5,
                "is_supporting": k < 2,
            }
            for k in range(5)
        ]
        rows.append({"question_id": f"q{q}", "question_text": f"Q{q}?", "contexts": ctx})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_ml(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\n"
        + "".join(f"{i}\tFilm {i}\t19{i:02d}\n" for i in range(1, 60))
    )
    inter = [(u, i, u * 100 + i) for u in range(1, 6) for i in range(u, u + 6)]
    (folder / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t4\t{t}\n" for u, i, t in inter)
    )
    return folder


def cfg(**kw) -> PrepareConfig:
    c = PrepareConfig(**kw)
    c.validate()
    return c


def read_bytes(folder: Path) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in FILES}


def test_every_field_has_help() -> None:
    helps = field_help(PrepareConfig)
    assert {"dataset", "input_path", "output_dir", "seed", "pool_size", "history_len"} <= set(helps)
    assert {"max_passage_words", "valid_fraction", "test_fraction", "max_examples"} <= set(helps)
    assert "skip_invalid" in helps
    assert all(h for _, _, h in helps.values())
    assert "WORDS" in helps["max_passage_words"][2]
    d = PrepareConfig()
    assert (d.seed, d.pool_size, d.history_len, d.skip_invalid) == (0, 20, 10, False)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["dataset=ml10m"], "not one of"),
        (["valid_fraction=0.6", "test_fraction=0.5"], "must be < 1"),
        (["test_fraction=1.0"], r"test_fraction must be in \[0, 1\)"),
        (["seed=-1"], "seed must be >= 0"),
        (["pool_size=1"], "pool_size must be >= 2"),
        (["max_examples=0"], "max_examples must be >= 1"),
        (["dedup_overlap=0"], "dedup_overlap must be in"),
        (["poolsize=3"], "unknown key 'poolsize'"),
        (["max_passage_tokens=12"], "unknown key 'max_passage_tokens'"),  # renamed: it counts words
        (["max_passage_words=0"], "max_passage_words must be >= 1"),
    ],
)
def test_config_rejects(overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(PrepareConfig, REPO / "configs" / "prepare_musique.yaml", overrides)


def test_input_path_required_except_ml100k() -> None:
    with pytest.raises(ConfigError, match="input_path is required for dataset 'musique'"):
        load_config(PrepareConfig, None, ["dataset=musique"])
    assert load_config(PrepareConfig, None, ["dataset=ml100k"]).input_path is None


@pytest.mark.parametrize("name", ["ml100k", "musique", "hotpotqa"])
def test_shipped_configs_load(name: str) -> None:
    path = REPO / "configs" / f"prepare_{name}.yaml"
    c = load_config(PrepareConfig, path)
    assert (c.seed, c.pool_size) == (0, 20)
    assert c.output_dir == f"data/{name}"
    lines = [x for x in path.read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert all("#" in x for x in lines)  # one comment per key


def test_qa_outputs_and_manifest(tmp_path: Path) -> None:
    src = write_ircot(tmp_path / "dev.jsonl")
    out = tmp_path / "out"
    manifest = run_prepare(
        cfg(dataset="hotpotqa_ircot", input_path=str(src), output_dir=str(out), pool_size=8),
        prompt_length_fn=lambda ex: len(ex.query) + sum(len(c.text) for c in ex.candidates),
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 16, "valid": 2, "test": 2}
    assert manifest["inputs_sha256"] == {"dev.jsonl": hashlib.sha256(src.read_bytes()).hexdigest()}
    assert manifest["seed"] == 0 and manifest["task"] == "passages"
    assert (
        manifest["config"]["pool_size"] == 8 and manifest["config"]["dataset"] == "hotpotqa_ircot"
    )
    assert manifest["pool_size"]["train"] == {"min": 8, "median": 8, "p95": 8, "max": 8}
    assert manifest["relevant_per_example"]["test"]["max"] == 2
    assert manifest["skipped"] == {} and manifest["stats"]["padding_passages"] == 60
    lengths = manifest["prompt_lengths"]["valid"]
    assert set(lengths) == {"min", "median", "p95", "max"} and 0 < lengths["min"] <= lengths["max"]
    examples = read_jsonl(out / "train.jsonl")
    assert len(examples) == 16 and all(e.num_candidates == 8 for e in examples)
    ids = [{e.id for e in read_jsonl(out / f"{s}.jsonl")} for s in ("train", "valid", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_byte_identical_for_a_seed(tmp_path: Path) -> None:
    src = write_ircot(tmp_path / "dev.jsonl")
    out = tmp_path / "out"
    c = cfg(dataset="hotpotqa_ircot", input_path=str(src), output_dir=str(out), pool_size=8)
    run_prepare(c)
    first = read_bytes(out)
    run_prepare(c)
    assert read_bytes(out) == first
    other = cfg(
        dataset="hotpotqa_ircot", input_path=str(src), output_dir=str(out), pool_size=8, seed=1
    )
    run_prepare(other)
    assert (out / "train.jsonl").read_bytes() != first["train.jsonl"]


def test_skip_invalid_counted_in_manifest(tmp_path: Path) -> None:
    src = write_ircot(tmp_path / "dev.jsonl")
    with src.open("a") as fh:
        fh.write('{"question_id": "bad", "question_text": "?", "contexts": []}\n{oops\n')
    c = cfg(dataset="hotpotqa_ircot", input_path=str(src), output_dir=str(tmp_path / "o"))
    with pytest.raises(DataError, match=r"dev.jsonl:21: field 'contexts': empty pool"):
        run_prepare(c)
    c.skip_invalid = True
    manifest = run_prepare(c)
    assert manifest["skipped"] == {"skipped_bad_rows": 1, "skipped_questions": 1}
    assert sum(manifest["counts"].values()) == 20


def test_sequential_outputs(tmp_path: Path) -> None:
    folder = write_ml(tmp_path / "ml")
    out = tmp_path / "out"
    c = cfg(dataset="ml100k", input_path=str(folder), output_dir=str(out), history_len=2)
    manifest = run_prepare(c)
    assert manifest["counts"] == {"train": 15, "valid": 5, "test": 5}
    assert set(manifest["inputs_sha256"]) == {"ml-100k.inter", "ml-100k.item"}
    assert manifest["task"] == "movies" and manifest["source"] == str(folder)
    test = read_jsonl(out / "test.jsonl")
    assert test[0].query == "Film 4 (1904)\nFilm 5 (1905)" and test[0].relevance == {"6": 1}
    first = read_bytes(out)
    run_prepare(c)
    assert read_bytes(out) == first
    c2 = cfg(
        dataset="ml100k",
        input_path=str(folder),
        output_dir=str(out),
        max_train_per_user=1,
        task="films",
    )
    manifest = run_prepare(c2)
    assert manifest["counts"]["train"] == 5 and read_jsonl(out / "test.jsonl")[0].task == "films"


def test_missing_input_folder(tmp_path: Path) -> None:
    c = cfg(dataset="ml1m", input_path=str(tmp_path / "nope"), output_dir=str(tmp_path / "o"))
    with pytest.raises(DataError, match="nope: folder not found"):
        run_prepare(c)
    c = cfg(
        dataset="musique", input_path=str(tmp_path / "nope.json"), output_dir=str(tmp_path / "o")
    )
    with pytest.raises(DataError, match="nope.json: file not found"):
        run_prepare(c)


def test_llara_task_from_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "mystery"
    folder.mkdir()
    (folder / "id2name.txt").write_text("".join(f"{i}::Game {i}\n" for i in range(30)))
    for name in ("train_data", "Val_data", "Test_data"):
        (folder / f"{name}.jsonl").write_text('{"seq": [1, 2, 3], "next": 4}\n')
    c = cfg(dataset="llara", input_path=str(folder), output_dir=str(tmp_path / "o"))
    with pytest.raises(DataError, match="set task"):
        run_prepare(c)
    steam = tmp_path / "steam"
    folder.rename(steam)
    c.input_path = str(steam)
    manifest = run_prepare(c)
    assert manifest["task"] == "games" and manifest["counts"] == {"train": 1, "valid": 1, "test": 1}


def test_main_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_ircot(tmp_path / "dev.jsonl")
    args = ["dataset=hotpotqa_ircot", f"input_path={src}", f"output_dir={tmp_path / 'o'}"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["train"] == 16


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("musique", {"train": 80, "valid": 10, "test": 10}),
        ("hotpotqa", {"train": 400, "valid": 50, "test": 50}),
    ],
)
def test_shipped_qa_configs_on_real_data(tmp_path: Path, name: str, counts: dict) -> None:
    c = load_config(PrepareConfig, REPO / "configs" / f"prepare_{name}.yaml")
    rel = Path(c.input_path).relative_to("../shared/data")
    path = shared_data() / rel
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set FGRPO_SHARED_DATA to its folder)")
    c.input_path, c.output_dir = str(path), str(tmp_path / "out")
    manifest = run_prepare(c)
    assert manifest["counts"] == counts
    assert manifest["pool_size"]["train"]["min"] == manifest["pool_size"]["train"]["max"] == 20
    assert list(manifest["inputs_sha256"]) == [path.name]


def test_gold_retrieved_on_real_data(tmp_path: Path) -> None:
    path = shared_data() / "musique" / "prunerag_dev500"
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set FGRPO_SHARED_DATA to its folder)")
    c = cfg(
        dataset="gold_retrieved", input_path=str(path), output_dir=str(tmp_path), max_examples=20
    )
    manifest = run_prepare(c)
    assert manifest["counts"] == {"train": 20, "valid": 20, "test": 20}
    assert set(manifest["inputs_sha256"]) == {
        "musique.json",
        "musique_retrieved_context_bge_10.jsonl",
    }
    assert manifest["stats"]["retrieved_copies_of_gold_removed"] > 0


def test_ml100k_default_fetch(tmp_path: Path) -> None:
    """input_path null: the recbole wheel (cached); skipped when it cannot be downloaded."""
    c = load_config(PrepareConfig, REPO / "configs" / "prepare_ml100k.yaml")
    c.output_dir, c.max_train_per_user, c.max_examples = str(tmp_path), 0, 30
    try:
        manifest = run_prepare(c)
    except FetchError as e:
        pytest.skip(f"MovieLens-100K unavailable (no network?): {e}")
    assert manifest["counts"] == {"train": 0, "valid": 30, "test": 30}
    assert manifest["source"] == "pip wheel recbole==1.2.1"
    assert manifest["inputs_sha256"]["ml-100k.inter"].startswith("4edb74e2a81178c2")
