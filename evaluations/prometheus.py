"""Prometheus metrics of evaluations (served on ``/metrics`` with the agent's).

``agent_evaluation_score{metric}``: every score stored (judge, user feedback, human);
``agent_evaluation_judge_calls_total{outcome}``: judge calls by outcome, ``ok``, ``invalid``
(an answer without a usable score), ``error`` (failed after its retries), and ``retry`` for each
retried attempt. Like ``agents.metrics``, every function here is cheap and never raises, and
with ``PROMETHEUS_MULTIPROC_DIR`` set each process writes its values there (a Celery worker
sharing that directory with the web server is served by it too).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

OUTCOMES = ("ok", "invalid", "error", "retry")
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

EVALUATION_SCORE = Histogram(
    "agent_evaluation_score",
    "Scores of agent runs (0.0-1.0, 1.0 is best), by metric.",
    ["metric"],
    buckets=SCORE_BUCKETS,
)
JUDGE_CALLS = Counter(
    "agent_evaluation_judge_calls_total",
    "LLM judge calls by outcome: ok, invalid (no usable score), error (after retries), retry.",
    ["outcome"],
)


def score_observed(*, metric: str, score: float) -> None:
    try:
        EVALUATION_SCORE.labels(metric=str(metric)[:64]).observe(float(score))
    except Exception:  # a metric must never break an evaluation
        logger.warning("metrics: score not recorded", exc_info=True)


def judge_called(*, outcome: str) -> None:
    try:
        JUDGE_CALLS.labels(outcome=outcome if outcome in OUTCOMES else "error").inc()
    except Exception:
        logger.warning("metrics: judge call not recorded", exc_info=True)


def judge_retried() -> None:
    judge_called(outcome="retry")


def startup(metric_names: list[str]) -> None:
    """Zero-valued series for the known outcomes and metrics, so that rates exist from the start."""
    try:
        for outcome in OUTCOMES:
            JUDGE_CALLS.labels(outcome=outcome)
        for name in metric_names:
            EVALUATION_SCORE.labels(metric=name)
    except Exception:
        logger.warning("metrics: evaluation series not created", exc_info=True)
