"""`fgrpo report`: the per-example slate-miss / rank-drop outcome (checked against the
pooled breakdown), and the page itself, opened in headless Chromium: the metrics, a
relevant-marked row, the filter script run, a screenshot."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fgrpo.commands.report import run_report
from fgrpo.config.commands import ReportConfig
from fgrpo.evaluation.metrics import error_analysis, example_errors

REPO = Path(__file__).resolve().parents[1]


def test_example_errors_by_hand() -> None:
    # relevant: 1, 3, 5 (grade 2), 6; slate [3, 5, 2, 4]; ranking [2, 5]; top 1
    out = example_errors(ranking=[2, 5], slate=[3, 5, 2, 4], grades=[1, 0, 1, 0, 2, 1], k=1)
    assert out == {1: "slate_miss", 3: "rank_drop", 5: "rank_drop", 6: "slate_miss"}
    assert example_errors([2, 5], [3, 5, 2, 4], [1, 0, 1, 0, 2, 1], k=2)[5] == "found"
    assert example_errors([], [], [0, 1], k=5) == {2: "slate_miss"}  # an invalid output misses everything


def test_example_errors_pool_to_error_analysis() -> None:
    rng = random.Random(0)
    rankings, slates, grades = [], [], []
    for _ in range(200):
        n = rng.randint(2, 12)
        g = [rng.choice([0, 0, 1, 2]) for _ in range(n)]
        slate = rng.sample(range(1, n + 1), rng.randint(0, n))
        rankings.append(rng.sample(slate, rng.randint(0, len(slate))))
        slates.append(slate)
        grades.append(g)
    for k in (1, 3, 5):
        outcomes = [o for r, s, g in zip(rankings, slates, grades, strict=True) for o in example_errors(r, s, g, k).values()]
        pooled = error_analysis(rankings, slates, grades, k)
        assert (outcomes.count("found"), outcomes.count("slate_miss"), outcomes.count("rank_drop")) == (
            pooled["found"], pooled["slate_miss_count"], pooled["rank_drop_count"])


def eval_folder(tmp_path: Path) -> Path:
    """An eval folder as `fgrpo eval` writes one, over a three-example dataset of one's own."""
    data, out = tmp_path / "data", tmp_path / "eval"
    data.mkdir()
    out.mkdir()
    rows = [
        {"id": "q1", "query": "Who wrote Dune?", "candidates": [{"id": "p1", "text": "Frank Herbert wrote Dune."},
                                                                 {"id": "p2", "text": "Paris is in France."}], "relevance": {"p1": 1}},
        {"id": "q2", "query": "Capital of Peru?", "candidates": [{"id": "p3", "text": "Lima <b>is</b> the capital."},
                                                                  {"id": "p4", "text": "Rome."}], "relevance": {"p3": 1}},
        {"id": "q3", "query": "Two answers", "candidates": [{"id": "a", "text": "one"}, {"id": "b", "text": "two"},
                                                             {"id": "c", "text": "three"}], "relevance": {"a": 1, "c": 1}},
    ]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "config.yaml").write_text(f"method: model\nmodel: builtin:tiny-llama\ndataset: {data}\nsplit: test\nks: [1, 2]\n")
    preds = [
        {"id": "q1", "slate": [1, 2], "ranking": [1], "relevant": [1], "slate_valid": True, "rank_valid": True, "errors": [],
         "completion": "<SLATE>[1] [2]</SLATE><RANK>[1]</RANK>"},
        {"id": "q2", "slate": [2], "ranking": [2], "relevant": [1], "slate_valid": True, "rank_valid": True, "errors": [],
         "completion": "<SLATE>[2]</SLATE><RANK>[2]</RANK>"},
        {"id": "q3", "slate": [3, 2, 1], "ranking": [2, 3], "relevant": [1, 3], "slate_valid": True, "rank_valid": True,
         "errors": [], "completion": "<SLATE>[3] [2] [1]</SLATE><RANK>[2] > [3]</RANK>"},
    ]
    (out / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    metrics = {"NDCG@1": 0.3333, "ci95/NDCG@1": 0.6533, "NDCG@2": 0.4769, "MRR": 0.5, "format/valid_rate": 1.0,
               "num_examples": 3, "warnings": ["the same ranking [2] for 67% of the examples"]}
    (out / "metrics.json").write_text(json.dumps(metrics))
    return out


def test_page_is_self_contained_and_states_the_breakdown(tmp_path: Path) -> None:
    page = run_report(ReportConfig(folder=str(eval_folder(tmp_path)))).read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from the network
    assert "Lima &lt;b&gt;is&lt;/b&gt; the capital." in page  # texts are escaped, not markup
    assert 'data-metric="NDCG@1">0.3333</td><td class="num">± 0.6533' in page
    # q2: its relevant p3 was never in the slate; q3: a (number 1) in the slate but not in the top 2
    assert '<li class="slate_miss">[1] p3: <b>slate miss</b></li>' in page
    assert '<li class="rank_drop">[1] a: <b>rank drop</b></li>' in page and '<li class="found">[3] c: <b>found</b></li>' in page
    assert "the same ranking [2] for 67% of the examples" in page  # the eval's warnings
    # pooled: 4 relevant, 2 found, 1 slate miss, 1 rank drop
    assert re.search(r"slate miss \(never in the slate\)</td><td class=\"num\">1</td><td class=\"num\">50.0% of missed", page)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("no Chromium here and no apt-get to install it (scripts/test.sh installs Debian's chromium where apt exists)")
    pytest.fail("chromium is not installed: scripts/test.sh installs it (apt-get install -y chromium)")


def browse(page: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1280,1400", *flags, page.as_uri()], capture_output=True, text=True, timeout=180)


def test_page_in_a_real_browser(tmp_path: Path) -> None:
    page = run_report(ReportConfig(folder=str(eval_folder(tmp_path))))
    dom = browse(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "3 of 3 examples shown" in html  # written by the page's script: it ran
    assert 'data-metric="NDCG@2">0.4769<' in html and 'data-metric="MRR">0.5000<' in html
    assert re.search(r'<li class="cand relevant">★ \[1\] <code>p1</code> Frank Herbert wrote Dune\.', html)
    assert html.count('class="cand relevant"') == 4
    shot = tmp_path / "page.png"
    proc = browse(page, f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_training_run_and_compare_folders(tmp_path: Path) -> None:
    run = tmp_path / "train"
    run.mkdir()
    rows = [{"step": s, "reward/slate": 0.1 * s, "reward/rank": 0.05 * s, "loss": 1.0 / s, "step_time_s": 0.5} for s in range(1, 6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*rows, {"note": "resumed from x"}]))
    (run / "stopped_early.json").write_text(json.dumps({"step": 5, "max_steps": 9}))
    page = run_report(ReportConfig(folder=str(run), output=str(tmp_path / "t.html"))).read_text()
    assert page.count("data:image/png;base64,") == 3  # learning, loss, cost
    assert "stopped early by max_time at step 5 of 9" in page and "resumed from x" in page
    cmp = tmp_path / "cmp"
    cmp.mkdir()
    results = {"metric_keys": ["NDCG@5"], "failures": [],
               "methods": {"fgrpo": {"type": "slate+ranking", "n": 3, "metrics": {"NDCG@5": {"mean": 0.61234, "ci95": 0.0211}},
                                     "cost": {"wall_clock_s": {"mean": 12.5}, "peak_rss_gib_max": 1.25}}}}
    (cmp / "results.json").write_text(json.dumps(results))
    page = run_report(ReportConfig(folder=str(cmp))).read_text()
    assert 'data-metric="NDCG@5">0.612 ± 0.021</td>' in page


def test_cli_report_and_a_folder_without_results(tmp_path: Path) -> None:
    folder = eval_folder(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "fgrpo", "report", str(folder), "max_examples=2"], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and f"written: {folder / 'report.html'}" in ok.stdout, ok.stderr[-2000:]
    assert "the first 2 of 3 examples" in (folder / "report.html").read_text()
    bad = subprocess.run([sys.executable, "-m", "fgrpo", "report", str(tmp_path / "nothing")], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no results.json (compare), metrics.json (eval) or metrics.jsonl" in bad.stderr
