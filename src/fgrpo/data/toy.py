"""A synthetic task whose relevant candidates are marked in the prompt.

Each pool holds ``pool_size`` words; 1..``max_relevant`` of them are followed by ``*``
(grade 1) and one of those, when there are two or more, by ``**`` (grade 2). A perfect
answer puts every marked item in the slate and ranks the ``**`` item first. A model can
only solve it by reading its prompt, so rising rewards show that training works.
"""

from __future__ import annotations

import numpy as np

from fgrpo.data.schema import Candidate, Example

TOY_WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "peach", "pear", "plum", "red", "blue", "green", "black", "white", "brown", "pink", "gray", "gold", "silver", "cat", "dog", "cow", "fox", "owl", "bee", "ant", "elk", "yak", "emu", "oak", "elm", "ash", "fir", "yew", "bay", "box", "fig", "ivy", "rye"]
TOY_QUERY = "select the marked items"


def make_toy_examples(n: int, pool_size: int = 8, max_relevant: int = 3, seed: int = 0) -> list[Example]:
    """``n`` deterministic toy examples."""
    if not 1 <= max_relevant <= pool_size <= len(TOY_WORDS):
        raise ValueError(f"need 1 <= max_relevant <= pool_size <= {len(TOY_WORDS)}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = rng.choice(len(TOY_WORDS), size=pool_size, replace=False)
        n_rel = int(rng.integers(1, max_relevant + 1))
        rel_pos = rng.choice(pool_size, size=n_rel, replace=False)
        grades = {int(p): 1 for p in rel_pos}
        if n_rel >= 2:
            grades[int(rel_pos[0])] = 2
        cands, relevance = [], {}
        for p, w in enumerate(words):
            mark = {0: "", 1: " *", 2: " **"}[grades.get(p, 0)]
            cid = f"c{p}"
            cands.append(Candidate(cid, TOY_WORDS[w] + mark))
            if p in grades:
                relevance[cid] = grades[p]
        out.append(Example(id=f"toy-{seed}-{i}", query=TOY_QUERY, candidates=cands, relevance=relevance, task="toy"))
    return out
