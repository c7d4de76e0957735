"""Evaluation runs: scoring outputs, the statistics over scores, and the self-contained HTML report.

`score_outputs` computes one score record per (row, step, model, scorer), only those missing,
with Wilson or bootstrap intervals per (step, model, scorer) and paired comparisons between
models (`tasks.evaluation.statistics`); `write_report` renders it all as one HTML file with
inline SVG charts.
"""

from tasks.evaluation.report import write_report
from tasks.evaluation.score_run import ScoringSummary, check_scores, load_scoring_summary, score_outputs

__all__ = ["ScoringSummary", "check_scores", "load_scoring_summary", "score_outputs", "write_report"]
