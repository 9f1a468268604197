"""Reads for evaluations, scoped to the asking user (staff see everyone's)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from agents.models import AgentRun
from evaluations.judge import JudgeInput
from evaluations.models import AgentEvaluation, EvaluationJob

CONTEXT_CHARS = 8000
EXPECTED_KEY = "evaluation_expected"


def sees_everything(user: User) -> bool:
    return bool(user.is_staff or user.is_superuser)


def evaluation_list_for_user(
    *, user: User, filters: dict[str, Any] | None = None
) -> QuerySet[AgentEvaluation]:
    """The scores of the caller's runs (every run's for staff), newest first."""
    filters = filters or {}
    qs = AgentEvaluation.objects.select_related("run")
    if not sees_everything(user):
        qs = qs.filter(run__user=user)
    if filters.get("run_id"):
        qs = qs.filter(run_id=filters["run_id"])
    if filters.get("metric"):
        qs = qs.filter(metric_name=filters["metric"])
    if filters.get("source"):
        qs = qs.filter(source=filters["source"])
    return qs


def run_get_for_user(*, user: User, run_id: uuid.UUID) -> AgentRun | None:
    """A run the caller may evaluate or rate: their own, or any for staff."""
    qs = AgentRun.objects.all()
    if not sees_everything(user):
        qs = qs.filter(user=user)
    return qs.filter(pk=run_id).first()


def job_get_for_user(*, user: User, job_id: uuid.UUID) -> EvaluationJob | None:
    qs = EvaluationJob.objects.all()
    if not sees_everything(user):
        qs = qs.filter(requested_by=user)
    return qs.filter(pk=job_id).first()


def in_sample(run_id: uuid.UUID | str, rate: float) -> bool:
    """Whether a run is in the evaluation sample: decided by its id, the same on every rerun."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(str(run_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") < rate * 2**64


def runs_to_evaluate(
    *,
    metric_names: list[str],
    since: datetime | None,
    run_ids: list[uuid.UUID] | None = None,
    user_id: str | None = None,
    limit: int | None = None,
    sample_rate: float = 1.0,
) -> list[tuple[AgentRun, list[str]]]:
    """Successful runs (created since ``since``, or the named ones) that lack a judge score,
    with the metrics each lacks, oldest first. User feedback does not count as scored."""
    qs = AgentRun.objects.filter(status=AgentRun.Status.SUCCESS).order_by("created_at", "id")
    if run_ids is not None:
        qs = qs.filter(pk__in=run_ids)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    runs = [run for run in qs if in_sample(run.id, sample_rate)]
    scored: dict[uuid.UUID, set[str]] = defaultdict(set)
    ids = [run.id for run in runs]
    for start in range(0, len(ids), 1000):
        rows = AgentEvaluation.objects.filter(
            run_id__in=ids[start : start + 1000],
            source=AgentEvaluation.Source.JUDGE,
            metric_name__in=metric_names,
        ).values_list("run_id", "metric_name")
        for run_id, metric in rows:
            scored[run_id].add(metric)
    result = []
    for run in runs:
        missing = [m for m in metric_names if m not in scored[run.id]]
        if missing:
            result.append((run, missing))
            if limit is not None and len(result) >= limit:
                break
    return result


def _tool_calls_text(run: AgentRun) -> str:
    lines = []
    for number, call in enumerate(run.tool_calls or [], start=1):
        outcome = {True: "ok", False: "error"}.get(call.get("ok"), "not run")
        args = json.dumps(call.get("args"), ensure_ascii=False, default=str)
        lines.append(f"{number}. {call.get('name')}({args}) -> {outcome}")
    return "\n".join(lines)


def _context_text(run: AgentRun) -> str:
    parts = []
    for call in run.tool_calls or []:
        if call.get("output"):
            parts.append(f"[{call.get('name')}] {call['output']}")
    return "\n\n".join(parts)[:CONTEXT_CHARS]


def run_judge_input(run: AgentRun) -> JudgeInput:
    """What the judge sees of a run: the message, the answer, what the tools returned (the
    facts the agent had), the plan, the tool calls, and a dataset case's expected answer."""
    expected = (run.metadata or {}).get(EXPECTED_KEY) if isinstance(run.metadata, dict) else None
    return JudgeInput(
        input=run.input,
        output=run.response,
        context=_context_text(run),
        plan=run.plan,
        tool_calls=_tool_calls_text(run),
        expected=str(expected or ""),
    )
