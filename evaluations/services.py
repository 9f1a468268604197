"""Writes for evaluations: storing scores, user feedback, the dataset gate, background jobs
(the evaluator itself is ``evaluations.evaluator``).

The outside pieces this app depends on are reached in one place each: the agent through
:func:`_agent_run`, Langfuse through ``agents.tracing.get_langfuse()`` in :func:`_send_scores`,
the Celery task in :func:`job_enqueue` (the judge: ``evaluations.judge.get_judge()``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from accounts.models import User
from agents.models import AgentRun
from agents.runner import agent_run
from evaluations import evaluator, prometheus, selectors
from evaluations.errors import (
    ApplicationError,
    DatasetInvalid,
    EvaluationError,
    JobNotFound,
    RunNotFound,
)
from evaluations.metrics import select_metrics
from evaluations.models import USER_FEEDBACK, AgentEvaluation, EvaluationJob

logger = logging.getLogger(__name__)

SCORE_ID_NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-4e59-9a57-0d2b8f7c1e10")


# -- outside services: one place each ---------------------------------------------------------


def _agent_run(*, user: User, message: str, metadata: dict[str, Any] | None = None) -> AgentRun:
    """Run the agent for ``user`` and return the finished run; raises the agent's domain error.

    The one call into the agent's lifecycle: the same budget, tracing and metrics as the API."""
    return agent_run(user=user, message=message, metadata=metadata)


def score_id_for(*, run_id: uuid.UUID | str, metric: str, source: str) -> str:
    """The Langfuse score id of a run's score: the same for the same run, metric and source, so a
    score sent again replaces itself instead of adding a duplicate."""
    return str(uuid.uuid5(SCORE_ID_NAMESPACE, f"{run_id}:{metric}:{source}"))


def _send_scores(evaluations: list[AgentEvaluation]) -> int:
    """Queue scores of traced runs for Langfuse (the SDK sends them in the background).
    Runs without a trace id are scored in the database only. Never raises."""
    from agents.tracing import get_langfuse

    traced = [e for e in evaluations if e.run.trace_id]
    if not traced:
        return 0
    client = get_langfuse()
    if client is None:
        return 0
    sent = 0
    for evaluation in traced:
        meta = evaluation.eval_metadata or {}
        try:
            client.create_score(
                name=evaluation.metric_name,
                value=float(evaluation.score),
                trace_id=evaluation.run.trace_id,
                score_id=score_id_for(
                    run_id=evaluation.run_id,
                    metric=evaluation.metric_name,
                    source=evaluation.source,
                ),
                data_type="NUMERIC",
                comment=str(meta.get("reasoning") or meta.get("comment") or "")[:1000] or None,
                metadata={
                    "source": evaluation.source,
                    "run_id": str(evaluation.run_id),
                    **{
                        k: meta[k]
                        for k in ("judge_model", "offline", "prompt_version", "prompt_sha256")
                        if k in meta
                    },
                },
            )
            sent += 1
        except Exception:
            logger.warning("Could not send score %s to Langfuse", evaluation, exc_info=True)
    return sent


def langfuse_flush() -> None:
    """Send the queued scores now (bounded; never raises)."""
    from agents.tracing import flush_langfuse

    flush_langfuse()


# -- storing scores ---------------------------------------------------------------------------


def evaluation_store(evaluations: list[AgentEvaluation]) -> None:
    """Insert or replace scores (one per run, metric and source), count them, send them."""
    if not evaluations:
        return
    AgentEvaluation.objects.bulk_create(
        evaluations,
        update_conflicts=True,
        unique_fields=["run", "metric_name", "source"],
        update_fields=["score", "eval_metadata", "created_at"],
    )
    for evaluation in evaluations:
        prometheus.score_observed(metric=evaluation.metric_name, score=evaluation.score)
    _send_scores(evaluations)


def feedback_set(
    *, user: User, run_id: uuid.UUID, score: float, comment: str = ""
) -> AgentEvaluation:
    """The user's rating of a run, stored as metric ``user_feedback``, source ``user`` (a second
    rating replaces the first) and sent to Langfuse. Staff may rate anyone's run."""
    run = selectors.run_get_for_user(user=user, run_id=run_id)
    if run is None:
        raise RunNotFound()
    evaluation = AgentEvaluation(
        run=run,
        metric_name=USER_FEEDBACK,
        source=AgentEvaluation.Source.USER,
        score=float(score),
        eval_metadata={"comment": comment, "rated_by": str(user.pk)},
        created_at=timezone.now(),
    )
    evaluation_store([evaluation])
    _flush_langfuse_soon()
    return AgentEvaluation.objects.select_related("run").get(
        run=run, metric_name=USER_FEEDBACK, source=AgentEvaluation.Source.USER
    )


def _flush_langfuse_soon() -> None:
    """A request must not wait for Langfuse: flush on a background thread."""
    threading.Thread(target=langfuse_flush, name="langfuse-score-flush", daemon=True).start()


# -- the dataset gate -------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetCase:
    line: int
    input: str
    expected: str = ""


def dataset_load(path: Path) -> list[DatasetCase]:
    """The cases of a JSONL file: ``{"input": str, "expected"?: str}`` a line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetInvalid(f"{path}: cannot be read ({exc})") from exc
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise DatasetInvalid(f"{path.name}, line {number}: not JSON ({exc})") from None
        if not isinstance(value, dict) or not isinstance(value.get("input"), str):
            raise DatasetInvalid(f'{path.name}, line {number}: needs a string "input"')
        if not value["input"].strip():
            raise DatasetInvalid(f'{path.name}, line {number}: "input" is empty')
        expected = value.get("expected", "")
        if not isinstance(expected, str):
            raise DatasetInvalid(f'{path.name}, line {number}: "expected" must be a string')
        cases.append(DatasetCase(line=number, input=value["input"], expected=expected))
    if not cases:
        raise DatasetInvalid(f"{path.name}: no cases")
    return cases


def dataset_user() -> User:
    """The owner of dataset runs (``EVALUATION_DATASET_USER``): they show up in admin under it."""
    user = User.objects.filter(email=settings.EVALUATION_DATASET_USER).first()
    if user is None:
        user = User(email=settings.EVALUATION_DATASET_USER, full_name="Evaluation dataset")
        user.set_unusable_password()
        user.save()
    return user


def dataset_evaluate(
    *,
    path: Path,
    metric_names: list[str] | None = None,
    fail_under: dict[str, float] | None = None,
    concurrency: int | None = None,
    write_report: bool = True,
    progress: evaluator.Progress | None = None,
) -> dict[str, Any]:
    """The release gate: run the agent on each case, judge the answers, compare with
    ``fail_under``. The report's ``dataset.passed`` is false when an average is below its
    threshold (or missing) or when the agent failed on a case."""
    cases = dataset_load(path)
    fail_under = fail_under or {}
    metrics = select_metrics(metric_names)
    missing = sorted(set(fail_under) - {m.name for m in metrics})
    if missing:
        raise EvaluationError(
            f"--fail-under names metric(s) not evaluated: {', '.join(missing)}",
            code="unknown_metric",
        )
    user = dataset_user()
    run_ids: list[uuid.UUID] = []
    agent_failures: list[dict[str, Any]] = []
    for case in cases:
        metadata = {
            "evaluation_dataset": path.name,
            "evaluation_case": case.line,
            selectors.EXPECTED_KEY: case.expected,
        }
        try:
            run = _agent_run(user=user, message=case.input, metadata=metadata)
        except ApplicationError as exc:
            agent_failures.append(
                {"line": case.line, "run_id": exc.extra.get("run_id"), "error": exc.detail}
            )
            continue
        run_ids.append(run.id)
    report = evaluator.evaluation_run(
        metric_names=[m.name for m in metrics],
        since=None,
        run_ids=run_ids,
        concurrency=concurrency,
        write_report=False,
        progress=progress,
    )
    gate = {}
    for name, threshold in fail_under.items():
        average = report["metrics_summary"][name]["avg_score"]
        gate[name] = {
            "fail_under": threshold,
            "avg_score": average,
            "passed": average is not None and average >= threshold,
        }
    report["dataset"] = {
        "path": str(path),
        "cases": len(cases),
        "runs": [str(i) for i in run_ids],
        "agent_failures": agent_failures,
        "gate": gate,
        "passed": not agent_failures and all(g["passed"] for g in gate.values()),
    }
    report["since_seconds"] = None
    if write_report:
        evaluator.report_write(report)
    return report


# -- background jobs --------------------------------------------------------------------------


def job_create(
    *,
    requested_by: User | None,
    run_ids: list[uuid.UUID] | None = None,
    since: str | None = None,
    metric_names: list[str] | None = None,
) -> EvaluationJob:
    """Queue an evaluation job (started when the transaction commits). Non-staff callers
    evaluate their own runs only: another user's run id is not found."""
    select_metrics(metric_names)  # unknown metrics are the caller's error, now
    window = (
        evaluator.parse_since(since) if since else (None if run_ids else evaluator.DEFAULT_SINCE)
    )
    user_id = None
    if requested_by is not None and not selectors.sees_everything(requested_by):
        user_id = str(requested_by.pk)
    if run_ids and requested_by is not None:
        for run_id in run_ids:
            if selectors.run_get_for_user(user=requested_by, run_id=run_id) is None:
                raise RunNotFound(f"Run {run_id} not found.")
    job = EvaluationJob.objects.create(
        requested_by=requested_by,
        backend=settings.EVALUATION_JOBS_BACKEND,
        params={
            "run_ids": [str(r) for r in run_ids or []],
            "since_seconds": int(window.total_seconds()) if window else None,
            "metrics": list(metric_names or []),
            "user_id": user_id,
        },
    )
    transaction.on_commit(lambda: job_enqueue(job_id=job.id))
    return job


def job_enqueue(*, job_id: uuid.UUID) -> None:
    """Hand a job to the backend: a Celery worker, or this process's job threads."""
    if settings.EVALUATION_JOBS_BACKEND == "celery":
        from evaluations.tasks import run_job

        run_job.delay(str(job_id))
    else:
        _embedded_pool().submit(_job_execute_in_thread, job_id)


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def _embedded_pool() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(
                max_workers=max(1, int(settings.EVALUATION_EMBEDDED_WORKERS)),
                thread_name_prefix="evaluation-job",
            )
            _pool_pid = os.getpid()
        return _pool


def embedded_jobs_idle(timeout: float = 30.0) -> bool:
    """Wait until this process's job threads have nothing left (tests, shutdown)."""
    pool = _pool
    if pool is None:
        return True
    marker = pool.submit(lambda: None)
    try:
        marker.result(timeout=timeout)
    except TimeoutError:
        return False
    return True


def _job_execute_in_thread(job_id: uuid.UUID) -> None:
    close_old_connections()
    try:
        job_execute(job_id=job_id)
    except Exception:
        logger.exception("Evaluation job %s crashed", job_id)
    finally:
        connection.close()


def _stale_before() -> datetime:
    return timezone.now() - timedelta(seconds=int(settings.EVALUATION_JOB_STALE_SECONDS))


def job_claim(*, job_id: uuid.UUID) -> bool:
    """Mark a job running, if it is queued (or running with a dead heartbeat: a worker that
    died, its task delivered again). False when it is not this caller's to run."""
    from django.db.models import Q

    now = timezone.now()
    claimable = Q(status=EvaluationJob.Status.QUEUED) | Q(
        status=EvaluationJob.Status.RUNNING, heartbeat_at__lt=_stale_before()
    )
    updated = EvaluationJob.objects.filter(claimable, pk=job_id).update(
        status=EvaluationJob.Status.RUNNING, started_at=now, heartbeat_at=now, error=""
    )
    return updated == 1


def job_execute(*, job_id: uuid.UUID) -> EvaluationJob | None:
    """Run a queued job to the end, recording progress, the report, or the error."""
    if not EvaluationJob.objects.filter(pk=job_id).exists():
        raise JobNotFound()
    if not job_claim(job_id=job_id):
        logger.info("Evaluation job %s is not queued; not running it", job_id)
        return None
    job = EvaluationJob.objects.get(pk=job_id)
    params = job.params or {}
    last_write = [0.0]

    def progress(completed: int, total: int) -> None:
        now = time.monotonic()
        if completed in (0, total) or now - last_write[0] >= 1.0:
            last_write[0] = now
            EvaluationJob.objects.filter(pk=job_id).update(
                completed=completed, total=total, heartbeat_at=timezone.now()
            )

    def heartbeat() -> None:
        EvaluationJob.objects.filter(pk=job_id).update(heartbeat_at=timezone.now())

    since = params.get("since_seconds")
    try:
        report = evaluator.evaluation_run(
            metric_names=params.get("metrics") or None,
            since=timedelta(seconds=since) if since else None,
            run_ids=[uuid.UUID(r) for r in params.get("run_ids") or []] or None,
            user_id=params.get("user_id"),
            progress=progress,
            heartbeat=heartbeat,
            job_id=str(job_id),
            write_report=False,  # the report is the job's (web servers may not write files)
        )
    except Exception as exc:
        detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
        logger.warning("Evaluation job %s failed: %s", job_id, detail)
        EvaluationJob.objects.filter(pk=job_id).update(
            status=EvaluationJob.Status.FAILED, error=str(detail)[:4000], finished_at=timezone.now()
        )
        return EvaluationJob.objects.get(pk=job_id)
    status = (
        EvaluationJob.Status.FAILED
        if evaluator.evaluation_all_failed(report)
        else EvaluationJob.Status.DONE
    )
    EvaluationJob.objects.filter(pk=job_id).update(
        status=status,
        report=report,
        error="every judge call failed" if status == EvaluationJob.Status.FAILED else "",
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    return EvaluationJob.objects.get(pk=job_id)


def job_fail_stale() -> int:
    """Mark failed the jobs whose process died: running without a heartbeat for
    ``EVALUATION_JOB_STALE_SECONDS``, or queued that long on the embedded backend (its process
    is gone; a Celery job may wait for a worker). Returns how many."""
    cutoff = _stale_before()
    now = timezone.now()
    running = EvaluationJob.objects.filter(
        status=EvaluationJob.Status.RUNNING, heartbeat_at__lt=cutoff
    ).update(
        status=EvaluationJob.Status.FAILED,
        error="interrupted: the process running the job stopped (no heartbeat)",
        finished_at=now,
    )
    queued = EvaluationJob.objects.filter(
        status=EvaluationJob.Status.QUEUED, backend="embedded", created_at__lt=cutoff
    ).update(
        status=EvaluationJob.Status.FAILED,
        error="interrupted: the process that queued the job stopped before running it",
        finished_at=now,
    )
    return running + queued
