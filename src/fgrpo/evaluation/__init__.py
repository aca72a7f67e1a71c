"""Evaluation: ranking metrics (trec_eval through ir_measures) and miss analysis."""

from fgrpo.evaluation.metrics import (
    compute_metrics,
    error_analysis,
    format_markdown_table,
    metric_keys,
)

__all__ = ["compute_metrics", "error_analysis", "format_markdown_table", "metric_keys"]
