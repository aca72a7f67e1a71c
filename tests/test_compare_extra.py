"""`fgrpo compare` with ``extra_evals``: every run scored again on a second dataset of the same
items. A tiny id-tiny compare (SFT + Popularity, one seed) is run once without and once with
the extra dataset: the second run only evaluates, its numbers are those of `fgrpo eval` on the
extra dataset with the same model, Popularity counts come from the main train split, and an
extra dataset with an item the main one lacks is refused before anything runs."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from fgrpo.config import ConfigError, build_config
from fgrpo.config.commands import EvalConfig
from fgrpo.data.movielens import Interaction, RecData
from fgrpo.data.next_item import build_sequential
from fgrpo.data.schema import read_jsonl, write_jsonl
from fgrpo.experiments.digest import fingerprint_fields
from fgrpo.experiments.expand import expand_runs
from fgrpo.experiments.runner import run_compare
from fgrpo.experiments.spec import load_compare_config

REPO = Path(__file__).resolve().parents[1]
N_ITEMS = 30
KEYS = ("NDCG@1", "NDCG@5", "Hit@1", "Hit@5", "MRR", "format/valid_rate", "num_examples")


def _rec_data(n_users: int, seed: int, step: int) -> RecData:
    """Users walk the catalogue in steps of ``step`` from a random start (all ids 1..N_ITEMS)."""
    rng = np.random.default_rng(seed)
    inter = []
    for u in range(1, n_users + 1):
        start, length = int(rng.integers(1, N_ITEMS + 1)), int(rng.integers(7, 12))
        inter += [Interaction(str(u), str((start + step * t - 1) % N_ITEMS + 1), float(t)) for t in range(length)]
    return RecData(inter, {str(i): f"Artist {i}" for i in range(1, N_ITEMS + 1)}, Path("f.inter"), Path("f.item"))


def _write(folder: Path, splits: dict) -> Path:
    for name, exs in splits.items():
        write_jsonl(exs, folder / f"{name}.jsonl")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("extra")
    main = _write(tmp / "main", build_sequential(_rec_data(20, 0, 1), pool_size=6, history_len=4))
    # the extra dataset: the same users with other pools (another seed), and a train split of
    # other users walking in steps of 3, so popularity fitted on it would count other items
    other = build_sequential(_rec_data(20, 0, 1), pool_size=6, history_len=4, seed=7)
    other["train"] = build_sequential(_rec_data(12, 5, 3), pool_size=6, history_len=4)["train"]
    extra = _write(tmp / "extra", other)
    return {"tmp": tmp, "main": main, "extra": extra}


def _experiment(data: dict[str, Path], model: str, extras: list[dict] | None = None) -> dict:
    exp = {
        "output_dir": str(data["tmp"] / "out"), "seeds": [0],
        "base": {"model": model, "dataset": str(data["main"]), "max_slate": 5, "max_rank": 3, "max_new_tokens": 16,
                 "sft_slate_size": 3, "torch_threads": 1, "tensorboard": False},
        "eval": {"batch_size": 8, "torch_threads": 1},
        "methods": [
            {"name": "sft", "kind": "sft", "overrides": {"max_steps": 3, "batch_size": 4, "slate_size": 3, "learning_rate": 0.01}},
            {"name": "popularity", "kind": "scorer"},
        ],
    }  # fmt: skip
    if extras is not None:
        exp["extra_evals"] = extras
    return exp


def _load(tmp: Path, exp: dict, name: str):
    path = tmp / name
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return load_compare_config(path)


@pytest.fixture(scope="module")
def compared(data: dict[str, Path]) -> dict:
    from fgrpo.commands.pretrain_items import run_pretrain_items
    from fgrpo.config.commands import PretrainItemsConfig

    pre = PretrainItemsConfig(dataset=str(data["main"]), output_dir=str(data["tmp"] / "pre"), hidden_size=16, num_layers=1,
                              num_heads=2, max_steps=0, torch_threads=1)  # fmt: skip
    model = str(run_pretrain_items(pre))
    plain = _load(data["tmp"], _experiment(data, model), "plain.yaml")
    first: list[str] = []
    assert not run_compare(plain, echo=first.append).failures, first
    markers = {p: p.stat().st_mtime_ns for p in Path(plain.output_dir).glob("runs/*/seed*/metrics.json")}
    cfg = _load(data["tmp"], _experiment(data, model, [{"name": "other", "dataset": str(data["extra"])}]), "extra.yaml")
    second: list[str] = []
    outcome = run_compare(cfg, echo=second.append)
    assert not outcome.failures, second
    return {"plain": plain, "cfg": cfg, "log": second, "markers": markers, "model": model}


def _eval(tmp: Path, **values) -> dict:
    from fgrpo.commands.eval import run_eval

    base = {"dataset": "", "split": "test", "max_slate": 5, "max_rank": 3, "max_new_tokens": 16, "batch_size": 8, "torch_threads": 1}
    cfg = build_config(EvalConfig, {**base, **values, "output_dir": str(tmp)}, "test")
    return run_eval(cfg)


@pytest.mark.slow  # the module's compare: 5 subprocesses, ~25 s of CPU
def test_adding_extra_evals_runs_only_them(compared: dict) -> None:
    log = compared["log"]
    assert sum("done before, skipped" in line for line in log) == 2  # sft and popularity themselves
    assert sum(": running" in line for line in log) == 2 and all("on 'other': running" in line for line in log if ": running" in line)
    assert {p: p.stat().st_mtime_ns for p in compared["markers"]} == compared["markers"]  # the main markers untouched
    # the runs' own fingerprints do not depend on extra_evals
    assert [r.digest() for r in expand_runs(compared["cfg"])] == [r.digest() for r in expand_runs(compared["plain"])]
    log.clear()  # a third invocation: nothing left to run
    run_compare(compared["cfg"], echo=log.append)
    assert sum("done before, skipped" in line for line in log) == 4 and not any(": running" in line for line in log)


@pytest.mark.slow  # the module's compare: 5 subprocesses, ~25 s of CPU
def test_extra_metrics_equal_fgrpo_eval_on_that_dataset(compared: dict, data: dict[str, Path]) -> None:
    out = Path(compared["cfg"].output_dir)
    res = json.loads((out / "results.json").read_text())
    extra = res["extra_evals"]["other"]
    assert extra["dataset"] == str(data["extra"]) and extra["split"] == "test"
    assert {m: e["n"] for m, e in extra["methods"].items()} == {"sft": 1, "popularity": 1}
    sft = _eval(data["tmp"] / "eval_sft", model=str(out / "runs/sft/seed0/train/model"), dataset=str(data["extra"]))
    pop = _eval(data["tmp"] / "eval_pop", method="popularity", dataset=str(data["extra"]), train_dataset=str(data["main"]))
    n_test = len(read_jsonl(data["extra"] / "test.jsonl"))
    for name, direct in (("sft", sft), ("popularity", pop)):
        got = json.loads((out / f"runs/{name}/seed0/extra/other/metrics.json").read_text())["metrics"]
        assert {k: got[k] for k in KEYS} == {k: direct[k] for k in KEYS}, name
        assert direct["num_examples"] == n_test and sft["format/valid_rate"] == 1.0
        assert extra["methods"][name]["metrics"]["NDCG@5"]["values"] == [direct["NDCG@5"]]
    main_ndcg = res["methods"]["sft"]["metrics"]["NDCG@5"]["values"]  # the main table is the main dataset's
    assert main_ndcg == [json.loads((out / "runs/sft/seed0/eval/metrics.json").read_text())["NDCG@5"]]
    md = (out / "results.md").read_text()
    table = md.split("## Test metrics on `other`")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert {"sft", "popularity"} <= set(rows) and f"{sft['NDCG@5']:.3f}" in rows["sft"]
    assert rows["method"] == md.split("## Test metrics\n")[1].split("\n## ")[0].strip().splitlines()[0]  # the same columns
    with (out / "runs.csv").open() as fh:  # one row per run and dataset: main ("") and the extra one
        table = {(r["method"], r["dataset"]): r for r in csv.DictReader(fh)}
    assert set(table) == {("sft", ""), ("popularity", ""), ("sft", "other"), ("popularity", "other")}
    assert float(table[("sft", "other")]["NDCG@5"]) == pytest.approx(sft["NDCG@5"])
    assert float(table[("sft", "")]["NDCG@5"]) == pytest.approx(main_ndcg[0])
    assert table[("sft", "other")]["run_dir"].endswith("extra/other") and table[("sft", "other")]["status"] == "done"


@pytest.mark.slow  # the module's compare: 5 subprocesses, ~25 s of CPU
def test_popularity_is_fitted_on_the_main_train_split_only(compared: dict, data: dict[str, Path]) -> None:
    def counts(folder: Path) -> Counter:  # PopularityScorer's rule, by hand: targets and history items
        c: Counter = Counter()
        for ex in read_jsonl(folder / "train.jsonl"):
            c.update(cid for cid, g in ex.relevance.items() if g > 0)
            c.update(str(h) for h in ex.meta["history_ids"])
        return c

    main, own = counts(data["main"]), counts(data["extra"])
    preds = [json.loads(line) for line in (Path(compared["cfg"].output_dir) / "runs/popularity/seed0/extra/other/eval/predictions.jsonl").open()]
    pools = {ex.id: [c.id for c in ex.candidates] for ex in read_jsonl(data["extra"] / "test.jsonl")}
    assert len(preds) == len(pools)
    assert all(p["scores"] == [float(main[i]) for i in pools[p["id"]]] for p in preds)
    assert any(p["scores"] != [float(own[i]) for i in pools[p["id"]]] for p in preds)  # the extra train split would differ


@pytest.mark.slow  # the module's compare: 5 subprocesses, ~25 s of CPU
def test_summarize_compare_reads_the_extra_dataset(compared: dict) -> None:
    results = Path(compared["cfg"].output_dir) / "results.json"
    extra = json.loads(results.read_text())["extra_evals"]["other"]["methods"]
    cmd = [sys.executable, str(REPO / "scripts/summarize_compare.py"), str(results), "--keys", "NDCG@5", "--dataset", "other",
           "--pair", "sft:popularity"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    ndcg = {m: e["metrics"]["NDCG@5"]["values"][0] for m, e in extra.items()}
    assert f"| sft | slate+ranking | 1 | {ndcg['sft']:.3f} |" in out
    assert f"| popularity | scorer | 1 | {ndcg['popularity']:.3f} |" in out
    assert f"- NDCG@5: {ndcg['sft'] - ndcg['popularity']:+.3f}" in out
    bad = subprocess.run([*cmd[:3], "--dataset", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no extra dataset 'nope'" in bad.stderr


def test_an_extra_item_the_main_dataset_lacks_is_refused(data: dict[str, Path]) -> None:
    splits = {name: read_jsonl(data["extra"] / f"{name}.jsonl") for name in ("train", "valid", "test")}
    ex = splits["test"][3]
    splits["test"][3] = dataclasses.replace(ex, candidates=[dataclasses.replace(ex.candidates[0], id="999"), *ex.candidates[1:]])
    bad = _write(data["tmp"] / "bad", splits)
    exp = _experiment(data, "builtin:tiny-llama", [{"name": "bad", "dataset": str(bad)}])
    exp["output_dir"] = str(data["tmp"] / "refused")
    with pytest.raises(ConfigError, match=rf"extra_evals 'bad': .*test.jsonl: example '{ex.id}' has item id\(s\) 999 that .*main does not have"):
        run_compare(_load(data["tmp"], exp, "bad.yaml"), echo=lambda line: None)
    assert not (data["tmp"] / "refused").exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"dataset": "x"}, "'name'"),
        ({"name": "a/b", "dataset": "x"}, "'name'"),
        ({"name": "a", "dataset": "toy"}, "'dataset'"),
        ({"name": "a", "dataset": "x", "limit": 0}, "'limit'"),
        ({"name": "a", "dataset": "x", "splt": "test"}, "splt"),
    ],
)
def test_bad_extra_eval_entries_name_the_key(data: dict[str, Path], entry: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match="extra_evals") as err:
        _load(data["tmp"], _experiment(data, "builtin:tiny-llama", [entry]), "entry.yaml")
    assert needle in str(err.value) and "entry.yaml" in str(err.value)


def test_train_dataset_enters_the_fingerprint_only_when_set() -> None:
    plain = EvalConfig(method="popularity", dataset="a")
    assert "train_dataset" not in fingerprint_fields(plain)  # digests of runs recorded before the key stay valid
    assert fingerprint_fields(dataclasses.replace(plain, train_dataset="b"))["train_dataset"] == "b"
    with pytest.raises(ConfigError, match="'train_dataset' is for the fitted scorers"):
        build_config(EvalConfig, {"method": "model", "dataset": "a", "train_dataset": "b"}, "here")
    with pytest.raises(ConfigError, match="prepared folders"):
        build_config(EvalConfig, {"method": "sasrec", "dataset": "toy", "train_dataset": "b"}, "here")


def test_fitted_scorers_read_train_and_valid_of_train_dataset(data: dict[str, Path]) -> None:
    from fgrpo.commands.eval import load_split, load_valid

    cfg = build_config(EvalConfig, {"method": "sasrec", "dataset": str(data["extra"]), "train_dataset": str(data["main"])}, "here")
    examples, train = load_split(cfg)
    ids = {name: [ex.id for ex in read_jsonl(data[folder] / f"{split}.jsonl")] for name, folder, split in
           (("test", "extra", "test"), ("train", "main", "train"), ("own", "extra", "train"))}  # fmt: skip
    assert [ex.id for ex in examples] == ids["test"] and [ex.id for ex in train] == ids["train"] != ids["own"]
    main_valid, own_valid = ([ex.candidates for ex in read_jsonl(data[f] / "valid.jsonl")] for f in ("main", "extra"))
    assert main_valid != own_valid  # the same users, other pools
    assert [ex.candidates for ex in load_valid(cfg)] == main_valid  # sasrec/gru4rec early-stop on the main valid split
    assert [ex.candidates for ex in examples] == [ex.candidates for ex in read_jsonl(data["extra"] / "test.jsonl")]


def test_a_run_recorded_while_a_key_was_still_hashed_at_its_default_is_reused() -> None:
    """SFT's micro_batch_size was hashed at its default (0) before it was declared hashed_if_set:
    such a run's recorded digest is one of config_digests', and so is today's; a run whose key
    was set to another value is not."""
    import hashlib
    import json

    from fgrpo.config.commands import SFTConfig
    from fgrpo.experiments.digest import DIGEST_VERSION, config_digest, config_digests

    sft = SFTConfig(dataset="d", model="m")
    values = dataclasses.asdict(sft)
    old_fields = fingerprint_fields(sft) | {"micro_batch_size": values["micro_batch_size"]}
    old = hashlib.sha256(json.dumps({"digest_version": DIGEST_VERSION, "configs": [old_fields]}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    accepted = config_digests([sft])
    assert config_digest([sft]) in accepted and old in accepted and old != config_digest([sft])
    assert config_digest([dataclasses.replace(sft, micro_batch_size=4)]) not in accepted
    # a warm-started run: every form of its warm start's digest counts
    warm = config_digests([sft])
    assert {config_digest([sft], w) for w in warm} <= config_digests([sft], warm)


def test_an_extra_evaluation_of_sasrec_loads_the_main_fit(tmp_path: Path) -> None:
    from fgrpo.experiments.extra import with_saved_fit

    main = EvalConfig(method="sasrec", dataset="main", output_dir=str(tmp_path / "eval"))
    extra = EvalConfig(method="sasrec", dataset="other", train_dataset="main", output_dir=str(tmp_path / "x"))
    assert with_saved_fit(extra, main).scorer_from is None  # the main eval saved nothing (a run from before): fit again
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "scorer.pt").write_bytes(b"")
    assert with_saved_fit(extra, main).scorer_from == str(tmp_path / "eval" / "scorer.pt")
    pop = EvalConfig(method="popularity", dataset="other", train_dataset="main", output_dir=str(tmp_path / "p"))
    assert with_saved_fit(pop, main).scorer_from is None  # popularity just counts again
    # bookkeeping: the extra evaluation's fingerprint is the same either way
    assert fingerprint_fields(with_saved_fit(extra, main)) == fingerprint_fields(extra)
