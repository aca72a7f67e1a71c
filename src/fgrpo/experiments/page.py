"""``fgrpo report``'s page: one self-contained HTML file (inline CSS and JS, plots as base64
PNG, nothing fetched over the network) with a run's metrics and their 95% intervals, the
learning and cost plots, the slate-miss / rank-drop breakdown, and a browsable table of the
predictions: the query, the candidates' texts, the slate and ranking as written, the
relevant candidates marked, and what became of each (found, slate miss, rank drop).

The builders take plain values (rows, dicts, examples); :mod:`fgrpo.commands.report`
finds them in a run or compare folder.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fgrpo.data.schema import Example
from fgrpo.evaluation.metrics import FOUND, RANK_DROP, SLATE_MISS, error_analysis, example_errors

OUTCOME_TEXT = {FOUND: "found", SLATE_MISS: "slate miss", RANK_DROP: "rank drop"}
OPEN_ROWS = 3  # the first examples' pools are shown open, the rest one click away


@dataclass
class Section:
    """A block of the page: a heading and its HTML (already escaped)."""

    title: str
    body: str
    anchor: str = ""


@dataclass
class Page:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return esc(value if value is not None else "-")
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------ tables


def metrics_table(metrics: Mapping[str, Any], keys: Sequence[str]) -> str:
    """One run's metrics: value and the ± half-width of its 95% interval (``ci95/KEY``)."""
    rows = []
    for key in keys:
        if key not in metrics:
            continue
        ci = metrics.get(f"ci95/{key}")
        rows.append(f'<tr><td>{esc(key)}</td><td class="num" data-metric="{esc(key)}">{number(metrics[key])}</td>'
                    f'<td class="num">{"± " + number(ci) if isinstance(ci, (int, float)) else ""}</td></tr>')
    extra = [k for k in ("num_examples", "format/slate_valid_rate", "format/rank_valid_rate") if k in metrics]
    rows += [f'<tr><td>{esc(k)}</td><td class="num" data-metric="{esc(k)}">{number(metrics[k])}</td><td></td></tr>' for k in extra]
    return ('<table id="metrics-table"><thead><tr><th>metric</th><th>value</th><th>95% CI</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def compare_table(methods: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> str:
    """compare's results.json: per method, mean ± 95% CI over its seeds, and its costs."""
    head = "".join(f"<th>{esc(k)}</th>" for k in keys)
    rows = []
    for name, entry in methods.items():
        cells = []
        for key in keys:
            m = (entry.get("metrics") or {}).get(key) or {}
            mean, ci = m.get("mean"), m.get("ci95")
            text = number(mean, 3) + (f" ± {number(ci, 3)}" if isinstance(ci, (int, float)) and ci else "")
            cells.append(f'<td class="num" data-metric="{esc(key)}">{text}</td>')
        cost = entry.get("cost") or {}
        wall = (cost.get("wall_clock_s") or {}).get("mean")
        rss = cost.get("peak_rss_gib_max")
        rows.append(f"<tr><td>{esc(name)}</td><td>{esc(entry.get('type', ''))}</td><td class=\"num\">{esc(entry.get('n', ''))}</td>"
                    + "".join(cells) + f'<td class="num">{number(wall, 1)}</td><td class="num">{number(rss, 2)}</td></tr>')
    return (f'<table id="metrics-table"><thead><tr><th>method</th><th>type</th><th>n</th>{head}<th>wall-clock s</th>'
            f"<th>peak RSS GiB</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            "<p class=\"note\">mean over seeds ± half-width of the 95% confidence interval of that mean.</p>")


def errors_table(analysis: Mapping[str, Any]) -> str:
    """The pooled slate-miss / rank-drop breakdown (:func:`error_analysis`)."""
    k = analysis.get("k")
    rows = [("relevant candidates", analysis["relevant"], ""), (f"found in the top {k}", analysis["found"], ""),
            ("missed", analysis["missed"], ""),
            ("slate miss (never in the slate)", analysis["slate_miss_count"], analysis["slate_miss"]),
            (f"rank drop (in the slate, not in the top {k})", analysis["rank_drop_count"], analysis["rank_drop"])]
    body = "".join(f'<tr><td>{esc(a)}</td><td class="num">{b}</td><td class="num">{"" if c == "" else f"{100 * c:.1f}% of missed"}</td></tr>'
                   for a, b, c in rows)
    return f'<table id="errors-table"><tbody>{body}</tbody></table>'


# ------------------------------------------------------------------ plots


def png_img(fig: Any, alt: str) -> str:
    """A matplotlib figure as an inline ``<img>`` (base64 PNG); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">'


def png_file_img(data: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and isinstance(r.get("step"), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


LEARNING_KEYS = (("reward/slate", "reward: slate"), ("reward/rank", "reward: rank"), ("format/valid_rate", "valid outputs"),
                 ("valid/NDCG@5", "valid NDCG@5"))
LOSS_KEYS = (("loss", "RL loss"), ("sft/loss", "SFT loss"), ("pretrain/loss", "pretraining loss"))
COST_KEYS = (("step_time_s", "seconds per step"), ("tokens_per_s", "training tokens / s"), ("rollout/tokens_per_s", "rollout tokens / s"))


def learning_plots(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """From metrics.jsonl rows: rewards, validity and valid NDCG@5 per step; the losses;
    the cost per step. Only the plots with data are drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imgs = []
    rl = [r for r in rows if r.get("phase") != "sft_warmup"]
    for keys, title, alt in ((LEARNING_KEYS, "learning", "learning curves"), (LOSS_KEYS, "loss", "loss curves"),
                             (COST_KEYS, "cost", "cost per step")):
        drawn = [(label, _series(rl if key != "sft/loss" else rows, key)) for key, label in keys]
        drawn = [(label, xy) for label, xy in drawn if xy[0]]
        if not drawn:
            continue
        fig, axes = plt.subplots(1, len(drawn), figsize=(3.6 * len(drawn), 2.8), squeeze=False)
        for ax, (label, (x, y)) in zip(axes[0], drawn, strict=True):
            ax.plot(x, y, marker="." if len(x) < 30 else None, lw=1.2)
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        imgs.append(png_img(fig, f"{title}: {alt}"))
    return imgs


# ------------------------------------------------------------------ predictions


def _cand_text(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def grades_of(p: Mapping[str, Any], ex: Example | None) -> list[int]:
    """The pool's grades (index k-1 for candidate k): the example's, else 1 for the
    ``relevant`` numbers of the prediction over its ``candidate_ids``."""
    if ex is not None:
        return ex.grades()
    relevant = set(p.get("relevant") or [])
    return [1 if n in relevant else 0 for n in range(1, len(p.get("candidate_ids") or []) + 1)]


def prediction_rows(predictions: Sequence[Mapping[str, Any]], examples: Mapping[str, Example], k: int) -> str:
    """The ``<tbody>`` rows: one per prediction, its example's query and pool when known
    (``examples`` by id; otherwise the ids predictions.jsonl carries)."""
    out = []
    for i, p in enumerate(predictions):
        ex = examples.get(str(p.get("id")))
        ids = [c.id for c in ex.candidates] if ex is not None else list(p.get("candidate_ids") or [])
        texts = [c.text for c in ex.candidates] if ex is not None else [""] * len(ids)
        grades = grades_of(p, ex)
        slate, ranking = list(p.get("slate") or []), list(p.get("ranking") or [])
        outcome = example_errors(ranking, slate, grades, k)
        valid = bool(p.get("slate_valid")) and bool(p.get("rank_valid"))
        kinds = sorted(set(outcome.values()) - {FOUND}) + ([] if valid else ["invalid"])
        rel_cells = "".join(
            f'<li class="{o}">[{n}] {esc(ids[n - 1]) if 0 < n <= len(ids) else f"?{n}"}: <b>{OUTCOME_TEXT[o]}</b></li>'
            for n, o in sorted(outcome.items())
        )
        cands = []
        for n, (cid, text) in enumerate(zip(ids, texts, strict=True), start=1):
            tags = []
            if n in slate:
                tags.append("in slate")
            if n in ranking:
                tags.append(f"rank {ranking.index(n) + 1}")
            cls = "cand relevant" if grades[n - 1] > 0 else "cand"
            mark = "★ " if grades[n - 1] > 0 else ""
            cands.append(f'<li class="{cls}">{mark}[{n}] <code>{esc(cid)}</code> {esc(_cand_text(text))}'
                         f'{" <i>(" + ", ".join(tags) + ")</i>" if tags else ""}</li>')
        written = esc(p.get("completion")) if p.get("completion") is not None else "<i>scorer: no text</i>"
        query = esc(ex.query) if ex is not None else "<i>(query not found: dataset not readable)</i>"
        out.append(
            f'<tr class="example" data-kinds="{" ".join(kinds) or "ok"}">'
            f'<td><code>{esc(p.get("id"))}</code></td><td class="query">{query}</td>'
            f'<td><code class="written">{written}</code><div class="parsed">slate: {" ".join(f"[{n}]" for n in slate) or "(invalid)"}'
            f'<br>ranking: {" &gt; ".join(f"[{n}]" for n in ranking) or "(invalid)"}</div></td>'
            f'<td><ul class="outcomes">{rel_cells}</ul></td>'
            f'<td><details{" open" if i < OPEN_ROWS else ""}><summary>{len(ids)} candidates</summary><ol class="pool">{"".join(cands)}</ol></details></td></tr>'
        )
    return "".join(out)


def predictions_section(predictions: Sequence[Mapping[str, Any]], examples: Mapping[str, Example], k: int,
                        total: int, label: str = "") -> str:  # fmt: skip
    """The browsable table, with a search box and an outcome filter (inline JS)."""
    shown = f"the first {len(predictions)} of {total}" if len(predictions) < total else f"all {total}"
    return (
        f'<p class="note">{esc(label)} {shown} examples. ★ marks a relevant candidate; each relevant one is '
        f"<b>found</b> (in the top {k} of the ranking), a <b>slate miss</b> (never put in the slate) or a "
        "<b>rank drop</b> (in the slate, ranked below the top k or left out).</p>"
        '<div class="controls"><input id="search" type="search" placeholder="search ids, queries, texts">'
        '<select id="kind"><option value="">all examples</option><option value="slate_miss">with a slate miss</option>'
        '<option value="rank_drop">with a rank drop</option><option value="invalid">invalid output</option>'
        '<option value="ok">every relevant one found</option></select> <span id="count"></span></div>'
        '<table class="predictions"><thead><tr><th>id</th><th>query</th><th>written (parsed)</th><th>relevant</th>'
        f"<th>pool</th></tr></thead><tbody>{prediction_rows(predictions, examples, k)}</tbody></table>"
    )


# ------------------------------------------------------------------ the page

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:2px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
.sub{color:#666;margin-top:0}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top}
th{background:#f5f5f5;text-align:left}.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:13px}.warn{background:#fff4e5;border:1px solid #f0a020;padding:6px 10px;margin:6px 0}
img{max-width:100%;border:1px solid #eee;margin:4px 0}.controls{margin:8px 0}#search{width:320px;padding:3px}
.predictions td{font-size:13px}.query{max-width:280px}.written{white-space:pre-wrap;font-size:12px;color:#333}
.parsed{color:#555;font-size:12px;margin-top:3px}.outcomes{margin:0;padding-left:16px}
li.found b{color:#1a7f37}li.slate_miss b{color:#c62828}li.rank_drop b{color:#b26a00}
.pool{margin:4px 0;padding-left:22px;max-width:460px}.cand.relevant{background:#e8f5e9}nav a{margin-right:12px}
"""

JS = """
(function(){
  var rows=[].slice.call(document.querySelectorAll('tr.example'));
  var search=document.getElementById('search'), kind=document.getElementById('kind'), count=document.getElementById('count');
  if(!search){return;}
  function apply(){
    var q=search.value.toLowerCase(), k=kind.value, n=0;
    rows.forEach(function(r){
      var ok=(!q||r.textContent.toLowerCase().indexOf(q)>=0)&&(!k||(' '+r.getAttribute('data-kinds')+' ').indexOf(' '+k+' ')>=0);
      r.style.display=ok?'':'none'; if(ok){n++;}
    });
    count.textContent=n+' of '+rows.length+' examples shown';
  }
  search.addEventListener('input',apply); kind.addEventListener('change',apply); apply();
})();
"""


def render(page: Page) -> str:
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in page.sections if s.anchor)
    body = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in page.sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(page.title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(page.title)}</h1><p class=\"sub\">{esc(page.subtitle)}</p>"
            f"<nav>{nav}</nav>{body}<script>{JS}</script></body></html>\n")


def warnings_html(warnings: Sequence[str]) -> str:
    return "".join(f'<div class="warn">{esc(w)}</div>' for w in warnings)


def pooled_errors(predictions: Sequence[Mapping[str, Any]], examples: Mapping[str, Example], k: int) -> dict[str, Any] | None:
    """:func:`error_analysis` over all the predictions (grades: :func:`grades_of`); None
    when there are none."""
    if not predictions:
        return None
    grades = [grades_of(p, examples.get(str(p.get("id")))) for p in predictions]
    return error_analysis([list(p.get("ranking") or []) for p in predictions], [list(p.get("slate") or []) for p in predictions],
                          grades, k)  # fmt: skip


def json_block(obj: Any) -> str:
    return f"<pre>{esc(json.dumps(obj, indent=1))}</pre>"
