"""Readers of multi-hop QA files: each question with its pool of passages.

Scope: read the common multi-hop QA formats into :class:`Question` records (a bad record
raises naming file, record and field, or is skipped and counted);
:mod:`fgrpo.data.passages` builds the examples. No prompts, no tokenization.

Formats (field names as in the public files; see ``../shared/data/SOURCES.md``)
    * ``hotpotqa_distractor``: HotpotQA's original JSON list of ``{_id, question,
      supporting_facts: [[title, sent_id]], context: [[title, [sentences]]]}``. A paragraph
      is relevant when its title appears in ``supporting_facts``; its text is its
      sentences joined (they carry their own leading spaces).
    * ``hotpotqa_ircot``: IRCoT's JSONL ``{question_id, question_text, contexts: [{id?,
      title, paragraph_text, is_supporting}]}``.
    * ``musique``: MuSiQue's JSONL (or a JSON list) ``{id, question, paragraphs: [{idx,
      title, paragraph_text, is_supporting}]}``.
    * ``gold_retrieved``: a folder with ``X.json`` (list of ``{id, Question,
      golden_context: ["Title\\ntext", ...]}``) and ``X_retrieved_context*.jsonl`` aligned
      line by line (``{id, query, context: [[wiki_id, "\\"Title\\"\\ntext"], ...]}``, BGE
      top-10 over DPR's 100-word Wikipedia passages). The pool is retrieved ∪ gold and
      the gold passages are the relevant ones.

Choices and why
    * Passages with the same normalized title and text (case, punctuation and spacing
      ignored) are one passage; a copy marked supporting makes the kept one relevant.
    * gold_retrieved: a retrieved passage is the *same* passage as a gold one when the
      normalized titles match and at least ``dedup_overlap`` of the word trigrams of the
      shorter text occur in the other; it is then dropped (the gold one stays). Gold
      (HotpotQA/MuSiQue paragraphs) and retrieved (a 2018 dump cut in 100-word chunks,
      an article's last chunk wrapping round to its start) texts never match exactly, yet
      most gold passages have such a retrieved twin, and kept, the twin would sit in the
      pool labelled non-relevant (a false negative). Trigrams, not single words: a short
      gold paragraph's words (title, function words) recur in any chunk of its article.
      On the shared dev files the overlap is bimodal (most pairs below 0.3 or above 0.7),
      so the default 0.5 is not a fine-tuned value. Other chunks of the same article stay
      as hard negatives. DPR also repeats the title at the start of an article's first
      chunk and escapes quotes as ``""``; both are undone so the two sources look alike
      and formatting alone does not tell gold from retrieved (length still differs a
      little: retrieved chunks are 100 words).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgrpo.data.common import bump, require_file
from fgrpo.data.schema import DataError, iter_json_lines, json_error_text

_WORD = re.compile(r"\w+")


@dataclass
class Passage:
    id: str
    title: str
    text: str
    supporting: bool = False


@dataclass
class Question:
    id: str
    question: str
    passages: list[Passage]
    where: str  # "file:line" or "file: record i", for error messages
    pool_field: str = "passages"  # name of the pool field in the source, for error messages


def normalize(text: str) -> str:
    """Lower-cased words only (NFKC, punctuation and spacing dropped), for dedup keys."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))


def clean(text: str) -> str:
    """Collapse runs of whitespace to single spaces."""
    return " ".join(text.split())


def _records(
    path: Path, skip_invalid: bool, stats: dict[str, int] | None
) -> Iterator[tuple[str, Any]]:
    """``(where, decoded object)`` from a JSON list or a JSONL file (detected by ``[``)."""
    require_file(path)
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:  # the whole file is unreadable: always an error
            raise DataError(
                f"{path}:{e.lineno}: not valid JSON ({json_error_text(e)})"
            ) from e
        for i, obj in enumerate(data):
            yield f"{path}: record {i}", obj
        return
    yield from iter_json_lines(path, skip_invalid, lambda: bump(stats, "skipped_bad_rows"))


_TYPE_NAMES = {str: "a non-empty string", list: "a list", dict: "an object", bool: "true/false"}


def _get(obj: dict[str, Any], key: str, typ: type, where: str, name: str | None = None) -> Any:
    """``obj[key]`` checked to be a ``typ`` (strings non-empty); ``name`` for messages."""
    name = name or key
    if key not in obj:
        raise DataError(f"{where}: field '{name}' is missing")
    value = obj[key]
    if not isinstance(value, typ) or (typ is str and not value.strip()):
        what = _TYPE_NAMES.get(typ, typ.__name__)
        raise DataError(f"{where}: field '{name}' must be {what}, got {value!r:.60}")
    return value


def _get_id(obj: dict[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise DataError(f"{where}: field '{key}' is missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise DataError(f"{where}: field '{key}' must be a non-empty string or integer id")
    return str(value).strip()


def _check_question(q: Question) -> None:
    """Non-empty pool, unique passage ids, at least one relevant passage."""
    if not q.passages:
        raise DataError(f"{q.where}: field '{q.pool_field}': empty pool (no passages)")
    seen: set[str] = set()
    for i, p in enumerate(q.passages):
        if p.id in seen:
            raise DataError(
                f"{q.where}: field '{q.pool_field}[{i}]': duplicate passage id '{p.id}'"
            )
        seen.add(p.id)
    if not any(p.supporting for p in q.passages):
        raise DataError(
            f"{q.where}: field '{q.pool_field}': no supporting passage (no relevant id)"
        )


def dedup_passages(passages: list[Passage], stats: dict[str, int] | None = None) -> list[Passage]:
    """Drop passages whose normalized title and text repeat an earlier one; keep relevance."""
    kept: dict[tuple[str, str], Passage] = {}
    for p in passages:
        key = (normalize(p.title), normalize(p.text))
        if key in kept:
            kept[key].supporting = kept[key].supporting or p.supporting
            bump(stats, "duplicate_passages_removed")
        else:
            kept[key] = Passage(p.id, p.title, p.text, p.supporting)
    return list(kept.values())


def _load(
    path: str | Path,
    id_key: str,
    parse: Callable[[dict[str, Any], str], Question],
    skip_invalid: bool,
    stats: dict[str, int] | None,
) -> list[Question]:
    path = Path(path)
    out: list[Question] = []
    first_seen: dict[str, str] = {}
    for where, obj in _records(path, skip_invalid, stats):
        try:
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            q = parse(obj, where)
            _check_question(q)
            if q.id in first_seen:
                raise DataError(
                    f"{where}: field '{id_key}': duplicate question id '{q.id}' "
                    f"(first at {first_seen[q.id]})"
                )
        except DataError:
            if not skip_invalid:
                raise
            bump(stats, "skipped_questions")
            continue
        first_seen[q.id] = where
        q.passages = dedup_passages(q.passages, stats)
        out.append(q)
    if not out:
        raise DataError(f"{path}: no usable question in the file")
    return out


def _parse_hotpotqa_distractor(obj: dict[str, Any], where: str) -> Question:
    qid = _get_id(obj, "_id", where)
    question = _get(obj, "question", str, where)
    facts = _get(obj, "supporting_facts", list, where)
    context = _get(obj, "context", list, where)
    support: set[str] = set()
    for i, fact in enumerate(facts):
        if not isinstance(fact, list) or not fact or not isinstance(fact[0], str):
            raise DataError(f"{where}: field 'supporting_facts[{i}]' must be [title, sent_id]")
        support.add(fact[0])
    passages = []
    titles = set()
    for i, para in enumerate(context):
        ok = isinstance(para, list) and len(para) == 2 and isinstance(para[0], str)
        if not ok or not isinstance(para[1], list) or not all(isinstance(s, str) for s in para[1]):
            raise DataError(f"{where}: field 'context[{i}]' must be [title, [sentences]]")
        titles.add(para[0])
        passages.append(Passage(f"{qid}:{i}", para[0], "".join(para[1]), para[0] in support))
    for i, fact in enumerate(facts):
        if fact[0] not in titles:
            raise DataError(
                f"{where}: field 'supporting_facts[{i}]': title '{fact[0]}' is not in 'context' "
                "(relevant id not in the pool)"
            )
    return Question(qid, clean(question), passages, where, "context")


def _parse_paragraphs(
    obj: dict[str, Any], where: str, qid: str, pool_key: str, id_key: str
) -> list[Passage]:
    items = _get(obj, pool_key, list, where)
    passages = []
    for i, para in enumerate(items):
        name = f"{pool_key}[{i}]"
        if not isinstance(para, dict):
            raise DataError(f"{where}: field '{name}' must be an object")
        if "title" not in para:
            raise DataError(f"{where}: field '{name}.title' is missing")
        title = para["title"]
        if not isinstance(title, str):
            raise DataError(f"{where}: field '{name}.title' must be a string")
        text = _get(para, "paragraph_text", str, where, f"{name}.paragraph_text")
        supporting = _get(para, "is_supporting", bool, where, f"{name}.is_supporting")
        pid = _get_id(para, id_key, f"{where}: {name}") if id_key in para else str(i)
        passages.append(Passage(f"{qid}:{pid}", title, text, supporting))
    return passages


def _parse_ircot(obj: dict[str, Any], where: str) -> Question:
    qid = _get_id(obj, "question_id", where)
    question = _get(obj, "question_text", str, where)
    passages = _parse_paragraphs(obj, where, qid, "contexts", "id")
    return Question(qid, clean(question), passages, where, "contexts")


def _parse_musique(obj: dict[str, Any], where: str) -> Question:
    qid = _get_id(obj, "id", where)
    question = _get(obj, "question", str, where)
    passages = _parse_paragraphs(obj, where, qid, "paragraphs", "idx")
    return Question(qid, clean(question), passages, where, "paragraphs")


def load_hotpotqa_distractor(
    path: str | Path, skip_invalid: bool = False, stats: dict[str, int] | None = None
) -> list[Question]:
    """HotpotQA's original distractor-setting JSON (a list; JSONL accepted too)."""
    return _load(path, "_id", _parse_hotpotqa_distractor, skip_invalid, stats)


def load_hotpotqa_ircot(
    path: str | Path, skip_invalid: bool = False, stats: dict[str, int] | None = None
) -> list[Question]:
    """IRCoT's processed HotpotQA JSONL (``question_id``, ``question_text``, ``contexts``)."""
    return _load(path, "question_id", _parse_ircot, skip_invalid, stats)


def load_musique(
    path: str | Path, skip_invalid: bool = False, stats: dict[str, int] | None = None
) -> list[Question]:
    """MuSiQue's original JSONL or a JSON list (``id``, ``question``, ``paragraphs``)."""
    return _load(path, "id", _parse_musique, skip_invalid, stats)


def find_gold_retrieved_files(path: str | Path) -> tuple[Path, Path]:
    """The ``(X.json, X_retrieved_context*.jsonl)`` pair in a folder (or next to ``X.json``)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".json":
        folder, only = p.parent, p
    elif p.is_dir():
        folder, only = p, None
    else:
        raise DataError(f"{p}: folder not found (gold_retrieved input_path is a folder)")
    pairs = []
    for retrieved in sorted(folder.glob("*_retrieved_context*.jsonl")):
        gold = folder / f"{retrieved.name.split('_retrieved_context')[0]}.json"
        if gold.is_file() and (only is None or gold == only):
            pairs.append((gold, retrieved))
    if len(pairs) != 1:
        found = ", ".join(f"{g.name} + {r.name}" for g, r in pairs) or "none"
        raise DataError(
            f"{folder}: expected exactly one pair X.json + X_retrieved_context*.jsonl, "
            f"found {found}"
        )
    return pairs[0]


def _split_title(s: str, where: str, name: str) -> tuple[str, str]:
    if "\n" not in s:
        raise DataError(f"{where}: field '{name}' must be 'Title\\ntext', got {s[:60]!r}")
    title, text = s.split("\n", 1)
    return title.strip(), text


def _dpr_passage(raw: str, where: str, name: str, stats: dict[str, int] | None) -> tuple[str, str]:
    """Undo DPR's quoting: ``"Title"`` -> Title, ``""`` -> ``"``, leading title copy dropped."""
    title, text = _split_title(raw, where, name)
    if len(title) >= 2 and title.startswith('"') and title.endswith('"'):
        title = title[1:-1]
    title, text = title.replace('""', '"'), clean(text.replace('""', '"'))
    if title and text.startswith(title + " "):
        text = text[len(title) + 1 :]
        bump(stats, "retrieved_title_prefix_removed")
    return title, text


def shingle_overlap(a: str, b: str, n: int = 3) -> float:
    """Share of the shorter text's word ``n``-grams (normalized words) found in the other."""

    def grams(text: str) -> set[tuple[str, ...]]:
        w = normalize(text).split()
        return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))} if w else set()

    ga, gb = grams(a), grams(b)
    if not ga or not gb:
        return 0.0
    return len(ga & gb) / min(len(ga), len(gb))


def load_gold_retrieved(
    path: str | Path,
    dedup_overlap: float = 0.5,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
) -> list[Question]:
    """Gold passages + BGE top-10 retrieved passages (PruneRAG's files); see module doc."""
    gold_path, ret_path = find_gold_retrieved_files(path)
    try:
        gold = json.loads(gold_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{gold_path}:{e.lineno}: not valid JSON ({json_error_text(e)})"
        ) from e
    if not isinstance(gold, list):
        raise DataError(f"{gold_path}: expected a JSON list of questions")
    lines = ret_path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    if lines == [""]:
        lines = []
    if len(lines) != len(gold):
        raise DataError(
            f"{ret_path}: {len(lines)} lines but {gold_path} holds {len(gold)} records; "
            "the two files must be aligned line by line"
        )
    out: list[Question] = []
    first_seen: dict[str, str] = {}
    for i, (g, line) in enumerate(zip(gold, lines, strict=True)):
        gw, rw = f"{gold_path}: record {i}", f"{ret_path}:{i + 1}"
        try:
            if not isinstance(g, dict):
                raise DataError(f"{gw}: expected a JSON object, got {type(g).__name__}")
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{rw}: not valid JSON ({json_error_text(e)})") from e
            if not isinstance(r, dict):
                raise DataError(f"{rw}: expected a JSON object, got {type(r).__name__}")
            qid = _get_id(g, "id", gw)
            rid = _get_id(r, "id", rw)
            if rid != qid:
                raise DataError(
                    f"{rw}: field 'id': {rid!r} does not match {gw} id {qid!r} (files not aligned)"
                )
            question = _get(g, "Question", str, gw)
            golds = []
            for k, s in enumerate(_get(g, "golden_context", list, gw)):
                if not isinstance(s, str):
                    raise DataError(f"{gw}: field 'golden_context[{k}]' must be a string")
                title, text = _split_title(s, gw, f"golden_context[{k}]")
                golds.append(Passage(f"{qid}:gold{k}", title, text, True))
            retrieved = []
            for k, item in enumerate(_get(r, "context", list, rw)):
                ok = isinstance(item, list) and len(item) == 2 and isinstance(item[1], str)
                if not ok or isinstance(item[0], bool) or not isinstance(item[0], (str, int)):
                    raise DataError(f"{rw}: field 'context[{k}]' must be [passage_id, text]")
                title, text = _dpr_passage(item[1], rw, f"context[{k}]", stats)
                retrieved.append(Passage(f"wiki:{item[0]}", title, text, False))
            q = Question(qid, clean(question), golds, gw, "golden_context")
            _check_question(q)  # gold must be non-empty before the retrieved ones are added
            seen_ids = {p.id for p in golds}
            gold_keys = [(normalize(gp.title), gp.text) for gp in golds]
            for k, p in enumerate(retrieved):
                title = normalize(p.title)
                copy_of_gold = any(
                    title == g_title and shingle_overlap(p.text, g_text) >= dedup_overlap
                    for g_title, g_text in gold_keys
                )
                if copy_of_gold:
                    bump(stats, "retrieved_copies_of_gold_removed")
                elif p.id in seen_ids:
                    raise DataError(f"{rw}: field 'context[{k}]': duplicate passage id '{p.id}'")
                else:
                    seen_ids.add(p.id)
                    q.passages.append(p)
            if qid in first_seen:
                raise DataError(
                    f"{gw}: field 'id': duplicate question id '{qid}' (first at {first_seen[qid]})"
                )
        except DataError:
            if not skip_invalid:
                raise
            bump(stats, "skipped_questions")
            continue
        first_seen[qid] = gw
        q.passages = dedup_passages(q.passages, stats)
        out.append(q)
    if not out:
        raise DataError(f"{gold_path}: no usable question in the file")
    return out
