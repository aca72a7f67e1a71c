"""Multi-hop QA builders: HotpotQA (original, IRCoT), MuSiQue, gold + retrieved pairs.

Small fixtures are generated in tmp_path; the real files in ../shared/data (or
$FGRPO_SHARED_DATA) are used when present and the tests skip with the reason otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fgrpo.data import passages, qa
from fgrpo.data.schema import DataError, example_from_json


def shared_data() -> Path:
    env = os.environ.get("FGRPO_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def real_file(rel: str) -> Path:
    path = shared_data() / rel
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set FGRPO_SHARED_DATA to its folder)")
    return path


def para_text(q: int, k: int, words: int = 12) -> str:
    return " ".join([f"q{q}p{k}"] + [f"w{q}x{k}y{j}" for j in range(words - 1)])


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def ircot_rows(n: int = 10, paras: int = 4) -> list[dict]:
    return [
        {
            "question_id": f"q{q}",
            "question_text": f"Question  {q}?",
            "contexts": [
                {
                    "id": str(k),
                    "title": f"Title {q}-{k}",
                    "paragraph_text": para_text(q, k),
                    "is_supporting": k in (1, 2),
                }
                for k in range(paras)
            ],
        }
        for q in range(n)
    ]


def musique_rows(n: int = 6, paras: int = 5) -> list[dict]:
    return [
        {
            "id": f"2hop__{q}",
            "question": f"Who {q}?",
            "answer": "x",
            "paragraphs": [
                {
                    "idx": k,
                    "title": f"M {q}-{k}",
                    "paragraph_text": para_text(q, k),
                    "is_supporting": k < 3,
                }
                for k in range(paras)
            ],
        }
        for q in range(n)
    ]


def hotpot_rows(n: int = 5) -> list[dict]:
    return [
        {
            "_id": f"h{q}",
            "question": f"What {q}?",
            "answer": "y",
            "supporting_facts": [[f"H {q}-0", 0], [f"H {q}-2", 1], [f"H {q}-2", 0]],
            "context": [[f"H {q}-{k}", [f"Sentence {k}.", " Second   one."]] for k in range(4)],
        }
        for q in range(n)
    ]


def build(questions, **kw):
    kw.setdefault("source", "test")
    kw.setdefault("pool_size", 6)
    return passages.build_qa(questions, **kw)


def all_examples(splits):
    return [e for s in passages.SPLITS for e in splits[s]]


# --------------------------------------------------------------------------- readers


def test_ircot_reader(tmp_path: Path) -> None:
    qs = qa.load_hotpotqa_ircot(write_jsonl(tmp_path / "d.jsonl", ircot_rows(2)))
    assert [q.id for q in qs] == ["q0", "q1"]
    assert qs[0].question == "Question 0?"  # whitespace collapsed
    assert [(p.id, p.supporting) for p in qs[0].passages] == [
        ("q0:0", False),
        ("q0:1", True),
        ("q0:2", True),
        ("q0:3", False),
    ]


def test_hotpotqa_distractor_reader(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps(hotpot_rows(2), indent=2))
    qs = qa.load_hotpotqa_distractor(path)
    p = qs[1].passages
    assert [x.id for x in p if x.supporting] == ["h1:0", "h1:2"]
    assert p[0].text == "Sentence 0. Second   one." and p[0].title == "H 1-0"


def test_musique_reader_json_list_and_jsonl(tmp_path: Path) -> None:
    a = tmp_path / "m.json"
    a.write_text(json.dumps(musique_rows(3)))
    b = write_jsonl(tmp_path / "m.jsonl", musique_rows(3))
    qa_ = qa.load_musique(a)
    qb = qa.load_musique(b)
    assert [q.id for q in qa_] == [q.id for q in qb] == ["2hop__0", "2hop__1", "2hop__2"]
    assert [p.id for p in qa_[0].passages if p.supporting] == [
        "2hop__0:0",
        "2hop__0:1",
        "2hop__0:2",
    ]


def test_exact_duplicates_merged_keeping_relevance(tmp_path: Path) -> None:
    rows = musique_rows(1)
    dup = dict(rows[0]["paragraphs"][4], idx=9, title="M 0-0", is_supporting=True)  # a copy
    dup["paragraph_text"] = "  " + rows[0]["paragraphs"][0]["paragraph_text"].upper() + " ."
    rows[0]["paragraphs"][0]["is_supporting"] = False  # of paragraph 0; only the copy relevant
    rows[0]["paragraphs"].append(dup)
    stats: dict[str, int] = {}
    (q,) = qa.load_musique(write_jsonl(tmp_path / "m.jsonl", rows), stats=stats)
    assert stats == {"duplicate_passages_removed": 1}
    assert len(q.passages) == 5 and q.passages[0].id == "2hop__0:0" and q.passages[0].supporting


# --------------------------------------------------------------------------- building


def test_split_by_question_is_disjoint_and_seeded() -> None:
    qs = [
        qa.Question(f"q{i}", "?", [qa.Passage(f"q{i}:0", "t", "x", True)], "w") for i in range(50)
    ]
    s = passages.split_questions(qs, seed=0, valid_fraction=0.1, test_fraction=0.2)
    ids = {k: [q.id for q in v] for k, v in s.items()}
    assert [len(v) for v in ids.values()] == [35, 5, 10]
    assert len(set(sum(ids.values(), []))) == 50
    assert ids == {k: [q.id for q in v] for k, v in passages.split_questions(qs, 0, 0.1, 0.2).items()}
    assert ids != {k: [q.id for q in v] for k, v in passages.split_questions(qs, 1, 0.1, 0.2).items()}
    assert all(v == sorted(v, key=lambda x: int(x[1:])) for v in ids.values())  # file order
    with pytest.raises(ValueError, match="sum to less than 1"):
        passages.split_questions(qs, 0, 0.5, 0.5)


def test_padding_from_other_questions_of_the_same_split(tmp_path: Path) -> None:
    qs = qa.load_hotpotqa_ircot(write_jsonl(tmp_path / "d.jsonl", ircot_rows(20)))
    stats: dict[str, int] = {}
    splits = build(qs, pool_size=10, valid_fraction=0.25, test_fraction=0.25, stats=stats)
    assert [len(splits[s]) for s in passages.SPLITS] == [10, 5, 5]
    for split in passages.SPLITS:
        split_ids = {e.id for e in splits[split]}
        for e in splits[split]:
            owners = [c.id.split(":")[0] for c in e.candidates]
            assert e.num_candidates == 10 and owners.count(e.id) == 4
            assert set(owners) <= split_ids  # never a passage of another split
            titles = [c.text.split(":")[0] for c in e.candidates]
            assert len(set(titles)) == 10
            assert e.relevance == {f"{e.id}:1": 1, f"{e.id}:2": 1}
            assert e.meta == {"source": "test", "num_relevant": 2, "padded": 6}
            assert e.task == "passages" and e.query == f"Question {e.id[1:]}?"
            example_from_json(e.to_json(), e.id)
    assert stats == {"padding_passages": 120}


def test_short_pool_when_split_is_too_small(tmp_path: Path) -> None:
    qs = qa.load_hotpotqa_ircot(write_jsonl(tmp_path / "d.jsonl", ircot_rows(2)))
    stats: dict[str, int] = {}
    splits = build(qs, pool_size=20, valid_fraction=0.0, test_fraction=0.0, stats=stats)
    assert [e.num_candidates for e in splits["train"]] == [8, 8]
    assert stats["short_pools"] == 2


def test_large_pool_is_cut_keeping_every_relevant(tmp_path: Path) -> None:
    qs = qa.load_musique(write_jsonl(tmp_path / "m.jsonl", musique_rows(6, paras=12)))
    stats: dict[str, int] = {}
    splits = build(qs, pool_size=5, stats=stats)
    for e in all_examples(splits):
        assert e.num_candidates == 5 and len(e.relevant_numbers()) == 3
        assert {c.id.split(":")[0] for c in e.candidates} == {e.id}
    assert stats == {"pool_passages_cut": 6 * 7}
    with pytest.raises(
        DataError, match=r"m.jsonl:\d: field 'paragraphs': 3 relevant .* pool_size 2"
    ):
        build(qs, pool_size=2)
    stats = {}
    assert all_examples(build(qs, pool_size=2, skip_invalid=True, stats=stats)) == []
    assert stats == {"skipped_questions_too_many_relevant": 6}


def test_order_shuffled_and_deterministic(tmp_path: Path) -> None:
    qs = qa.load_hotpotqa_ircot(write_jsonl(tmp_path / "d.jsonl", ircot_rows(20)))
    a = [e.to_json() for e in all_examples(build(qs, seed=4, pool_size=8))]
    b = [e.to_json() for e in all_examples(build(qs, seed=4, pool_size=8))]
    c = [e.to_json() for e in all_examples(build(qs, seed=5, pool_size=8))]
    assert a == b and a != c
    positions = {tuple(sorted(example_from_json(x, "").relevant_numbers())) for x in a}
    assert len(positions) > 1


def test_max_examples_keeps_pools_unchanged(tmp_path: Path) -> None:
    qs = qa.load_hotpotqa_ircot(write_jsonl(tmp_path / "d.jsonl", ircot_rows(20)))
    full = {e.id: e.to_json() for e in all_examples(build(qs, pool_size=8))}
    part = build(qs, pool_size=8, max_examples=2)
    assert [len(part[s]) for s in passages.SPLITS] == [2, 2, 2]
    assert all(full[e.id] == e.to_json() for e in all_examples(part))


def test_passages_cut_to_max_words(tmp_path: Path) -> None:
    qs = qa.load_hotpotqa_ircot(write_jsonl(tmp_path / "d.jsonl", ircot_rows(3)))
    stats: dict[str, int] = {}
    splits = build(
        qs, pool_size=4, max_passage_words=5, valid_fraction=0, test_fraction=0, stats=stats
    )
    for e in splits["train"]:
        for c in e.candidates:
            title, text = c.text.split(": ", 1)
            assert title.startswith("Title ") and len(text.split()) == 5
    assert stats["passages_truncated"] == 12
    assert passages.candidate_text(qa.Passage("i", " A  b ", "x\n y  z"), None) == "A b: x y z"
    assert passages.candidate_text(qa.Passage("i", "", "x y z"), 2) == "x y"


# --------------------------------------------------------------------------- gold + retrieved


def write_gold_retrieved(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gold, ret = [], []
    for q in range(n):
        gold.append(
            {
                "id": q,
                "Question": f"Which {q}?",
                "answer": ["a"],
                "golden_context": [f"Gold {q}-{k}\n{para_text(q, k, 30)}" for k in range(2)],
            }
        )
        copy = (
            f'"Gold {q}-0"\nGold {q}-0 '
            + " ".join(para_text(q, 0, 30).split()[:25])
            + " tail words"
        )
        ret.append(
            {
                "id": q,
                "query": f"Which {q}?",
                "context": [
                    [f"{q}001", copy],  # a chunk holding gold 0: dropped
                    [f"{q}002", f'"Gold {q}-0"\nlater chunk about ""quoted"" other things {q}'],
                    [f"{q}003", f'"Other {q}"\nOther {q} is a {q} thing ""here""'],
                    [f"{q}004", f"Plain {q}\nunquoted title text {q}"],
                ],
            }
        )
    (folder / "set.json").write_text(json.dumps(gold, indent=1))
    write_jsonl(folder / "set_retrieved_context_bge_10.jsonl", ret)
    return folder


def test_gold_retrieved_pool(tmp_path: Path) -> None:
    folder = write_gold_retrieved(tmp_path / "gr")
    stats: dict[str, int] = {}
    qs = qa.load_gold_retrieved(folder, stats=stats)
    assert stats == {"retrieved_copies_of_gold_removed": 6, "retrieved_title_prefix_removed": 12}
    p = {x.id: x for x in qs[1].passages}
    assert sorted(p) == ["1:gold0", "1:gold1", "wiki:1002", "wiki:1003", "wiki:1004"]
    assert p["wiki:1002"].title == "Gold 1-0" and not p["wiki:1002"].supporting  # other chunk
    assert p["wiki:1002"].text == 'later chunk about "quoted" other things 1'
    assert (p["wiki:1003"].title, p["wiki:1003"].text) == ("Other 1", 'is a 1 thing "here"')
    assert p["wiki:1004"].title == "Plain 1"
    assert [x.supporting for x in qs[1].passages] == [True, True, False, False, False]
    splits = build(qs, pool_size=8, valid_fraction=0, test_fraction=0)
    assert all(e.num_candidates == 8 and len(e.relevance) == 2 for e in splits["train"])
    # overlap 1.0 keeps near-copies that are not exact
    assert len(qa.load_gold_retrieved(folder, dedup_overlap=1.0)[0].passages) == 6


def test_shingle_overlap() -> None:
    assert qa.shingle_overlap("a b c d", "x a b c d y") == 1.0
    assert qa.shingle_overlap("a b c d", "d c b a") == 0.0
    assert qa.shingle_overlap("", "a b c") == 0.0


def test_gold_retrieved_files(tmp_path: Path) -> None:
    folder = write_gold_retrieved(tmp_path / "gr")
    assert qa.find_gold_retrieved_files(folder) == qa.find_gold_retrieved_files(folder / "set.json")
    write_gold_retrieved(tmp_path / "gr2")
    (tmp_path / "gr2" / "set.json").rename(tmp_path / "gr2" / "x.json")
    with pytest.raises(DataError, match=r"gr2: expected exactly one pair .* found none"):
        qa.find_gold_retrieved_files(tmp_path / "gr2")
    with pytest.raises(DataError, match="folder not found"):
        qa.find_gold_retrieved_files(tmp_path / "nope")


def test_gold_retrieved_errors(tmp_path: Path) -> None:
    folder = write_gold_retrieved(tmp_path / "gr", n=3)
    ret = folder / "set_retrieved_context_bge_10.jsonl"
    lines = ret.read_text().splitlines()
    ret.write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(DataError, match=r"2 lines but .*set.json holds 3 records"):
        qa.load_gold_retrieved(folder)
    swapped = [lines[0], lines[2], lines[1]]
    ret.write_text("\n".join(swapped) + "\n")
    with pytest.raises(
        DataError, match=r"jsonl:2: field 'id': '2' does not match .*record 1 id '1'"
    ):
        qa.load_gold_retrieved(folder)
    stats: dict[str, int] = {}
    assert [q.id for q in qa.load_gold_retrieved(folder, skip_invalid=True, stats=stats)] == ["0"]
    assert stats["skipped_questions"] == 2
    ret.write_text("\n".join(lines) + "\n")
    gold = json.loads((folder / "set.json").read_text())
    gold[1]["golden_context"] = []
    (folder / "set.json").write_text(json.dumps(gold))
    with pytest.raises(DataError, match=r"set.json: record 1: field 'golden_context': empty pool"):
        qa.load_gold_retrieved(folder)
    gold[1]["golden_context"] = ["no newline here"]
    (folder / "set.json").write_text(json.dumps(gold))
    with pytest.raises(DataError, match=r"record 1: field 'golden_context\[0\]' must be 'Title"):
        qa.load_gold_retrieved(folder)
    (folder / "set.json").write_text("[{]")
    with pytest.raises(DataError, match=r"set.json:1: not valid JSON"):
        qa.load_gold_retrieved(folder)


# --------------------------------------------------------------------------- bad input


def mutate(rows: list[dict], fn) -> list[dict]:
    rows = json.loads(json.dumps(rows))
    fn(rows)
    return rows


BAD_IRCOT = [
    (lambda r: r[1].pop("question_text"), r"d.jsonl:2: field 'question_text' is missing"),
    (lambda r: r[1].update(question_text=3), r"d.jsonl:2: field 'question_text' must be"),
    (lambda r: r[1].update(contexts=[]), r"d.jsonl:2: field 'contexts': empty pool"),
    (
        lambda r: r[1]["contexts"][3].pop("title"),
        r"d.jsonl:2: field 'contexts\[3\].title' is missing",
    ),
    (
        lambda r: r[1]["contexts"][0].update(is_supporting="yes"),
        r"d.jsonl:2: field 'contexts\[0\].is_supporting' must be true/false",
    ),
    (
        lambda r: [c.update(is_supporting=False) for c in r[1]["contexts"]],
        r"d.jsonl:2: field 'contexts': no supporting passage \(no relevant id\)",
    ),
    (
        lambda r: r[1]["contexts"][2].update(id="1"),
        r"d.jsonl:2: field 'contexts\[2\]': duplicate passage id 'q1:1'",
    ),
    (
        lambda r: r[1].update(question_id="q0"),
        r"d.jsonl:2: field 'question_id': duplicate question id 'q0' \(first at .*d.jsonl:1\)",
    ),
    (lambda r: r.__setitem__(1, [1, 2]), r"d.jsonl:2: expected a JSON object, got list"),
]


@pytest.mark.parametrize(("fn", "pattern"), BAD_IRCOT)
def test_bad_ircot_records(tmp_path: Path, fn, pattern: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", mutate(ircot_rows(3), fn))
    with pytest.raises(DataError, match=pattern):
        qa.load_hotpotqa_ircot(path)
    stats: dict[str, int] = {}
    qs = qa.load_hotpotqa_ircot(path, skip_invalid=True, stats=stats)
    assert [q.id for q in qs] == ["q0", "q2"] and stats == {"skipped_questions": 1}


def test_bad_json_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ircot_rows(3))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1][:-5], lines[2]]) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid JSON"):
        qa.load_hotpotqa_ircot(path)
    stats: dict[str, int] = {}
    assert len(qa.load_hotpotqa_ircot(path, skip_invalid=True, stats=stats)) == 2
    assert stats == {"skipped_bad_rows": 1}


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope.jsonl: file not found"):
        qa.load_musique(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"empty.jsonl: no usable question"):
        qa.load_musique(tmp_path / "empty.jsonl")


def test_bad_hotpotqa_distractor(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    rows = mutate(hotpot_rows(3), lambda r: r[1]["supporting_facts"].append(["Absent", 0]))
    path.write_text(json.dumps(rows))
    with pytest.raises(
        DataError,
        match=r"h.json: record 1: field 'supporting_facts\[3\]': title 'Absent' is not in",
    ):
        qa.load_hotpotqa_distractor(path)
    rows = mutate(hotpot_rows(3), lambda r: r[2]["context"].__setitem__(1, ["T", "not a list"]))
    path.write_text(json.dumps(rows))
    with pytest.raises(
        DataError, match=r"record 2: field 'context\[1\]' must be \[title, \[sentences\]\]"
    ):
        qa.load_hotpotqa_distractor(path)
    path.write_text(json.dumps(hotpot_rows(2), indent=1)[:-10])
    with pytest.raises(DataError, match=r"h.json:\d+: not valid JSON"):
        qa.load_hotpotqa_distractor(path)


def test_bad_musique(tmp_path: Path) -> None:
    rows = mutate(musique_rows(2), lambda r: r[0]["paragraphs"][1].pop("paragraph_text"))
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(
        DataError, match=r"m.jsonl:1: field 'paragraphs\[1\].paragraph_text' is missing"
    ):
        qa.load_musique(path)


# --------------------------------------------------------------------------- real data


REAL = [
    ("hotpotqa/ircot_dev500/dev_subsampled.jsonl", qa.load_hotpotqa_ircot, 500, {2}),
    ("hotpotqa/hipporag_train100/hotpotqa_train.json", qa.load_hotpotqa_distractor, 100, {2, 3, 4}),
    ("musique/hipporag_train100/musique_train.json", qa.load_musique, 100, {2, 3, 4}),
    ("hotpotqa/prunerag_dev500", qa.load_gold_retrieved, 500, {2}),
    ("musique/prunerag_dev500", qa.load_gold_retrieved, 500, {2, 3, 4}),
]


@pytest.mark.parametrize(("rel", "load", "n", "n_relevant"), REAL, ids=[r[0] for r in REAL])
def test_real_files(rel: str, load, n: int, n_relevant: set[int]) -> None:
    questions = load(real_file(rel))
    assert len(questions) == n
    stats: dict[str, int] = {}
    splits = passages.build_qa(questions, source=rel, pool_size=20, stats=stats)
    assert [len(splits[s]) for s in passages.SPLITS] == [n - 2 * n // 10, n // 10, n // 10]
    assert "short_pools" not in stats
    ids = [e.id for e in all_examples(splits)]
    assert len(set(ids)) == n
    for e in all_examples(splits):
        assert e.num_candidates == 20 and e.task == "passages"
        assert len(e.relevance) in n_relevant
        example_from_json(e.to_json(), e.id)
        assert all(len(c.text.split()) <= 128 + 30 for c in e.candidates)  # 30: title words
