"""The evaluator: judge runs on the metric prompts, in parallel, idempotently; the report.

``evaluation_run`` is what ``manage.py evaluate``, the background jobs and the dataset gate
call. Judge calls run on a thread pool; the scores are stored and sent (``services``) in batches
as they arrive, on the calling thread.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from agents.models import AgentRun
from core.durations import parse_duration
from core.errors import InvalidDuration
from evaluations import prometheus, selectors, services
from evaluations.errors import EvaluationError, JudgeAnswerInvalid, JudgeError
from evaluations.judge import Judge, JudgeInput, Judgement, get_judge
from evaluations.metrics import Metric, select_metrics
from evaluations.models import AgentEvaluation

logger = logging.getLogger(__name__)

DEFAULT_SINCE = timedelta(hours=24)
MAX_FAILURES_IN_REPORT = 100
STORE_SECONDS = 0.5
STORE_BATCH = 200
Progress = Callable[[int, int], None]


@dataclass
class _Tally:
    success: int = 0
    failure: int = 0
    total: float = 0.0
    below_threshold: int = 0


@dataclass
class _RunState:
    remaining: int
    failed: bool = False


@dataclass
class _Totals:
    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add_usage(self, prompt: int | None, completion: int | None, cost: float | None) -> None:
        self.prompt_tokens += prompt or 0
        self.completion_tokens += completion or 0
        if cost is None:
            self.cost_known = False
        else:
            self.cost += cost


def _judge_one(judge: Judge, metric: Metric, data: JudgeInput) -> Judgement:
    return judge.judge(metric, data)


def _drain(
    arrived: queue.SimpleQueue[Future[Judgement]], timeout: float
) -> list[Future[Judgement]]:
    """The futures finished so far: waits up to ``timeout`` for the first one."""
    try:
        finished = [arrived.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            finished.append(arrived.get_nowait())
        except queue.Empty:
            return finished


def _metadata(judgement: Judgement, metric: Metric, job_id: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "reasoning": judgement.reasoning,
        "judge_model": judgement.model,
        "offline": judgement.offline,
        "prompt_version": metric.version,
        "prompt_sha256": metric.sha256,
        "latency_ms": judgement.latency_ms,
        "prompt_tokens": judgement.prompt_tokens,
        "completion_tokens": judgement.completion_tokens,
        "cost": judgement.cost,
        "attempts": judgement.attempts,
    }
    if job_id:
        meta["job_id"] = job_id
    return meta


def parse_since(value: str | None) -> timedelta:
    """``90m``, ``24h``, ``7d``, ``30s``, ``2w`` (or a number of seconds) as a timedelta; the
    default window when empty (``core.durations``)."""
    if not (value or "").strip():
        return DEFAULT_SINCE
    try:
        return parse_duration(value or "")
    except InvalidDuration as exc:
        raise EvaluationError(exc.detail, code="invalid_since") from None


def evaluation_run(
    *,
    metric_names: list[str] | None = None,
    since: timedelta | None = DEFAULT_SINCE,
    run_ids: list[uuid.UUID] | None = None,
    user_id: str | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    dry_run: bool = False,
    write_report: bool = True,
    progress: Progress | None = None,
    heartbeat: Callable[[], None] | None = None,
    job_id: str | None = None,
    judge: Judge | None = None,
) -> dict[str, Any]:
    """Judge the runs that lack a judge score, on each metric they lack; return the report.

    By default the successful runs of the last 24 hours (``since=None``: any age, e.g. with
    ``run_ids``). Judge calls run ``concurrency`` at a time (``EVALUATION_CONCURRENCY``) on
    threads; scores are stored (and sent to Langfuse) as they arrive, so an interrupted run keeps
    what it scored and a rerun judges only what is missing. A judge answer without a usable score
    is a failure of that run and metric, listed in the report, never raised.
    """
    started = time.perf_counter()
    timestamp = datetime.now(UTC)
    metrics = select_metrics(metric_names)
    by_name = {m.name: m for m in metrics}
    candidates = selectors.runs_to_evaluate(
        metric_names=list(by_name),
        since=timezone.now() - since if since is not None else None,
        run_ids=run_ids,
        user_id=user_id,
        limit=limit,
        sample_rate=float(settings.EVALUATION_SAMPLE_RATE),
    )
    judge = judge or get_judge()
    tasks = [(run, by_name[name]) for run, missing in candidates for name in missing]
    tallies = {m.name: _Tally() for m in metrics}
    totals = _Totals()
    runs = {run.id: _RunState(remaining=len(missing)) for run, missing in candidates}
    if dry_run:
        report = _report(
            timestamp=timestamp, started=started, judge=judge, tallies=tallies, totals=totals,
            runs=runs, metrics=metrics, since=since, dry_run=True,
        )  # fmt: skip
        report["would_judge"] = [
            {"run_id": str(run.id), "metrics": missing} for run, missing in candidates
        ]
        report["judge_calls_planned"] = len(tasks)
        return report

    workers = max(1, int(concurrency or settings.EVALUATION_CONCURRENCY))
    done = 0
    if progress:
        progress(0, len(tasks))
    pool = ThreadPoolExecutor(
        max_workers=min(workers, max(len(tasks), 1)), thread_name_prefix="judge"
    )
    pending: dict[Future[Judgement], tuple[AgentRun, Metric]] = {}
    batch: list[AgentEvaluation] = []
    try:
        # Finished calls arrive on a queue: waiting on thousands of futures at once would cost
        # more than the calls.
        arrived: queue.SimpleQueue[Future[Judgement]] = queue.SimpleQueue()
        inputs: dict[uuid.UUID, JudgeInput] = {}
        for run, metric in tasks:
            data = inputs.get(run.id) or inputs.setdefault(run.id, selectors.run_judge_input(run))
            future = pool.submit(_judge_one, judge, metric, data)
            pending[future] = (run, metric)
            future.add_done_callback(arrived.put)
        last_beat = last_store = time.monotonic()
        while pending:
            finished = _drain(arrived, timeout=STORE_SECONDS)
            for future in finished:
                run, metric = pending.pop(future)
                state = runs[run.id]
                state.remaining -= 1
                tally = tallies[metric.name]
                totals.calls += 1
                try:
                    judgement = future.result()
                except JudgeError as exc:
                    outcome = "invalid" if isinstance(exc, JudgeAnswerInvalid) else "error"
                    prometheus.judge_called(outcome=outcome)
                    totals.add_usage(
                        exc.extra.get("prompt_tokens"),
                        exc.extra.get("completion_tokens"),
                        exc.extra.get("cost", 0.0 if outcome == "error" else None),
                    )
                    tally.failure += 1
                    state.failed = True
                    totals.failed_calls += 1
                    if len(totals.failures) < MAX_FAILURES_IN_REPORT:
                        totals.failures.append(
                            {"run_id": str(run.id), "metric": metric.name, "error": exc.detail,
                             "code": exc.code}
                        )  # fmt: skip
                    logger.warning("Judge failed on run %s, %s: %s", run.id, metric.name, exc)
                    continue
                except Exception as exc:  # a bug in a judge: still one failure, not a crash
                    logger.exception("Judge crashed on run %s, %s", run.id, metric.name)
                    prometheus.judge_called(outcome="error")
                    tally.failure += 1
                    state.failed = True
                    totals.failed_calls += 1
                    if len(totals.failures) < MAX_FAILURES_IN_REPORT:
                        totals.failures.append(
                            {"run_id": str(run.id), "metric": metric.name, "error": str(exc)[:500],
                             "code": "judge_crashed"}
                        )  # fmt: skip
                    continue
                prometheus.judge_called(outcome="ok")
                tally.success += 1
                tally.total += judgement.score
                if metric.threshold is not None and judgement.score < metric.threshold:
                    tally.below_threshold += 1
                totals.add_usage(
                    judgement.prompt_tokens, judgement.completion_tokens, judgement.cost
                )
                batch.append(
                    AgentEvaluation(
                        run=run,
                        metric_name=metric.name,
                        source=AgentEvaluation.Source.JUDGE,
                        score=judgement.score,
                        eval_metadata=_metadata(judgement, metric, job_id),
                        created_at=timezone.now(),
                    )
                )
            # Stored in batches (a write per answer would compete with the judge calls).
            if batch and (
                len(batch) >= STORE_BATCH
                or not pending
                or time.monotonic() - last_store >= STORE_SECONDS
            ):
                services.evaluation_store(batch)
                batch = []
                last_store = time.monotonic()
            done += len(finished)
            if progress and finished:
                progress(done, len(tasks))
            if heartbeat and time.monotonic() - last_beat >= 1.0:
                heartbeat()
                last_beat = time.monotonic()
    finally:
        # Interrupted (Ctrl-C): drop the calls not started, store what was judged.
        pool.shutdown(wait=False, cancel_futures=True)
        if batch:
            services.evaluation_store(batch)
        services.langfuse_flush()

    report = _report(
        timestamp=timestamp, started=started, judge=judge, tallies=tallies, totals=totals,
        runs=runs, metrics=metrics, since=since, dry_run=False,
    )  # fmt: skip
    if write_report:
        report_write(report)
    return report


def _report(
    *,
    timestamp: datetime,
    started: float,
    judge: Judge,
    tallies: dict[str, _Tally],
    totals: _Totals,
    runs: dict[uuid.UUID, _RunState],
    metrics: list[Metric],
    since: timedelta | None,
    dry_run: bool,
) -> dict[str, Any]:
    failed = sum(1 for state in runs.values() if state.failed)
    return {
        "timestamp": timestamp.isoformat(timespec="seconds"),
        "model": judge.model,
        "judge": {"model": judge.model, "offline": judge.offline},
        "total_traces": len(runs),
        "successful_traces": len(runs) - failed,
        "failed_traces": failed,
        "duration_seconds": round(time.perf_counter() - started, 3),
        "metrics_summary": {
            metric.name: {
                "success_count": tallies[metric.name].success,
                "failure_count": tallies[metric.name].failure,
                "avg_score": (
                    round(tallies[metric.name].total / tallies[metric.name].success, 4)
                    if tallies[metric.name].success
                    else None
                ),
                "threshold": metric.threshold,
                "below_threshold": tallies[metric.name].below_threshold,
                "prompt_version": metric.version,
            }
            for metric in metrics
        },
        "judge_calls": totals.calls,
        "failed_judge_calls": totals.failed_calls,
        "tokens": {
            "prompt": totals.prompt_tokens,
            "completion": totals.completion_tokens,
            "total": totals.prompt_tokens + totals.completion_tokens,
        },
        "cost": round(totals.cost, 6) if totals.cost_known else None,
        "since_seconds": int(since.total_seconds()) if since is not None else None,
        "dry_run": dry_run,
        "failures": totals.failures,
        "report_path": None,
    }


def report_write(report: dict[str, Any]) -> str:
    """Write ``reports/evaluation_YYYYMMDD_HHMMSS.json`` (``EVALUATION_REPORTS_DIR``); its path."""
    folder = Path(settings.EVALUATION_REPORTS_DIR)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationError(
            f"Could not create the reports folder {folder} ({exc}); the scores are stored.",
            code="report_not_written",
        ) from exc
    stem = f"evaluation_{datetime.now(UTC):%Y%m%d_%H%M%S}"
    path = folder / f"{stem}.json"
    number = 1
    while path.exists():
        number += 1
        path = folder / f"{stem}_{number}.json"
    try:
        shown = str(path.relative_to(settings.BASE_DIR))
    except (ValueError, AttributeError):
        shown = str(path)
    report["report_path"] = shown
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise EvaluationError(
            f"Could not write the report to {folder} ({exc}); the scores are stored. "
            "Set EVALUATION_REPORTS_DIR or use --no-report.",
            code="report_not_written",
        ) from exc
    return shown


def evaluation_all_failed(report: dict[str, Any]) -> bool:
    """Judge calls were made and every one failed: a broken judge, not a bad answer."""
    return bool(report["judge_calls"]) and report["failed_judge_calls"] == report["judge_calls"]
