"""Scores of agent runs (``AgentEvaluation``) and the background jobs that make them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from agents.models import AgentRun

USER_FEEDBACK = "user_feedback"


class AgentEvaluation(models.Model):
    """One score of one run on one metric, from one source: 0.0 (worst) to 1.0 (best)."""

    class Source(models.TextChoices):
        JUDGE = "judge", "LLM judge"
        USER = "user", "User feedback"
        HUMAN = "human", "Human reviewer"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="evaluations")
    metric_name = models.CharField(max_length=64)
    score = models.FloatField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.JUDGE)
    # The judge's reasoning, judge model, prompt version and hash, latency, tokens, cost (or a
    # user's comment). Named as in the seed: not ``metadata``.
    eval_metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = (
            models.UniqueConstraint(
                fields=("run", "metric_name", "source"), name="evaluation_one_per_run_metric_source"
            ),
            models.CheckConstraint(
                condition=models.Q(score__gte=0.0) & models.Q(score__lte=1.0),
                name="evaluation_score_0_to_1",
            ),
        )
        indexes = (
            models.Index(fields=("metric_name", "-created_at"), name="eval_metric_created_idx"),
        )

    def __str__(self) -> str:
        return f"{self.metric_name}={self.score:.2f} ({self.source}) for run {self.run_id}"


class EvaluationJob(models.Model):
    """An evaluation asked for through the API or admin, run in the background.

    Its state lives here, so any web process answers the status call. ``heartbeat_at`` moves
    while it runs; a ``running`` job whose heartbeat stopped (its process died) is marked
    ``failed`` when noticed (see ``evaluations.services.job_fail_stale``).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="evaluation_jobs",
    )
    # {"run_ids", "since_seconds", "metrics", "user_id" (whose runs; null: everyone's)}
    params = models.JSONField(default=dict, blank=True)
    backend = models.CharField(max_length=16, blank=True, default="")
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    report = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("status", "heartbeat_at"), name="evaljob_status_beat_idx"),)

    def __str__(self) -> str:
        return f"{self.status} evaluation job {self.id}"

    @property
    def progress(self) -> dict[str, int | float]:
        percent = round(100.0 * self.completed / self.total, 1) if self.total else 0.0
        if self.status == self.Status.DONE:
            percent = 100.0
        return {"completed": self.completed, "total": self.total, "percent": percent}
