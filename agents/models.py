from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class AgentThread(models.Model):
    """A conversation. Its id is the LangGraph thread id; it belongs to one user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_threads"
    )
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ("-updated_at",)
        indexes = (models.Index(fields=("owner", "-updated_at"), name="thread_owner_updated_idx"),)

    def __str__(self) -> str:
        return self.title or str(self.id)


class AgentRun(models.Model):
    """One message to the agent and everything that happened while answering it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for its turn on the thread or for a worker
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"  # paused for a person's approval

    class Strategy(models.TextChoices):
        """What a new run does when its thread already has a run pending or running."""

        REJECT = "reject", "Reject (409 thread_busy)"
        ENQUEUE = "enqueue", "Enqueue (run after the current one)"
        INTERRUPT = "interrupt", "Interrupt (cancel the current one, keep what it wrote)"
        ROLLBACK = "rollback", "Rollback (cancel the current one and remove its turn)"

    class Cancel(models.TextChoices):
        """Why a run was asked to stop (empty: it was not)."""

        NONE = "", "—"
        CANCEL = "cancel", "Cancelled"
        INTERRUPT = "interrupt", "Interrupted by a newer run"
        ROLLBACK = "rollback", "Rolled back by a newer run"
        DISCONNECT = "disconnect", "Its client disconnected"

    class Decision(models.TextChoices):
        """What a person decided on an interrupted run's pending calls (empty: nothing yet)."""

        NONE = "", "—"
        APPROVE = "approve", "Approved"
        EDIT = "edit", "Approved with edited arguments"
        REJECT = "reject", "Rejected"
        EXPIRED = "expired", "Rejected: not decided in time"
        SUPERSEDED = "superseded", "Rejected: a newer message replaced it"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_runs"
    )
    thread = models.ForeignKey(AgentThread, on_delete=models.CASCADE, related_name="runs")
    input = models.TextField()
    response = models.TextField(blank=True, default="")
    plan = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True, default="")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    trace_id = models.CharField(max_length=64, blank=True, default="")
    provider = models.CharField(max_length=32, blank=True, default="")
    model = models.CharField(max_length=128, blank=True, default="")
    # Token counts exactly as the LLM reported them; null when it reported none.
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    # [{"name", "args", "ok", "output", "duration_ms"}], in call order.
    tool_calls = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Tokens held on the user's daily ledger (``TokenUsage.reserved``) while the run executes.
    reserved_tokens = models.PositiveIntegerField(default=0)
    # Run control: executed by the background executor (a Celery worker, or the app's own
    # process on the embedded default) rather than by the request that started it.
    background = models.BooleanField(default=False)
    multitask_strategy = models.CharField(
        max_length=16, choices=Strategy.choices, default=Strategy.REJECT
    )
    # Set by a cancel (the API, the admin, a newer run's strategy); the executing process
    # notices it at the next model token or tool boundary.
    cancel_requested = models.CharField(
        max_length=16, choices=Cancel.choices, blank=True, default=Cancel.NONE
    )
    # Approvals: an ``interrupted`` run's pending calls (``{"tool_calls": [{id, name, args}]}``)
    # and what was decided on them; the run that resumed it points back at it.
    interrupt = models.JSONField(null=True, blank=True)
    decision = models.CharField(
        max_length=16, choices=Decision.choices, blank=True, default=Decision.NONE
    )
    resumed_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resumed_by"
    )
    # What a resuming run resumes with: ``{"decision", "args"?, "comment"?}``.
    resume = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)  # pending until then
    finished_at = models.DateTimeField(null=True, blank=True)

    ACTIVE = (Status.PENDING, Status.RUNNING)
    FINISHED = (Status.SUCCESS, Status.ERROR, Status.INTERRUPTED)

    class Meta:
        ordering = ("-created_at",)
        indexes = (
            models.Index(fields=("user", "-created_at"), name="run_user_created_idx"),
            models.Index(fields=("thread", "created_at"), name="run_thread_created_idx"),
            models.Index(fields=("status", "-created_at"), name="run_status_created_idx"),
            # A thread's queue: its pending and running runs, oldest first.
            models.Index(
                fields=("thread", "created_at"),
                condition=models.Q(status__in=("pending", "running")),
                name="run_active_thread_idx",
            ),
            # Interrupted runs waiting for a decision (a thread's hold; the approval TTL sweep).
            models.Index(
                fields=("thread", "created_at"),
                condition=models.Q(status="interrupted", decision=""),
                name="run_awaiting_decision_idx",
            ),
        )
        constraints = (
            # One run executing at a time per thread, across processes: the last guard behind
            # the thread lock that admits runs (``agents.services.run_admit``). Pending runs
            # wait their turn in creation order.
            models.UniqueConstraint(
                fields=("thread",),
                condition=models.Q(status="running"),
                name="run_one_active_per_thread",
            ),
        )

    def __str__(self) -> str:
        return f"{self.status} run {self.id}"

    @property
    def awaiting_decision(self) -> bool:
        """Interrupted for approval, and nobody has decided yet."""
        return self.status == self.Status.INTERRUPTED and not self.decision


class TokenUsage(models.Model):
    """A user's token ledger for one UTC day: what the daily budget counts.

    Written at run start (``reserved``) and finish (``used``) with atomic updates; nothing
    links it to threads or runs, so deleting them leaves the day's usage as it was.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="token_usage"
    )
    day = models.DateField()
    # Tokens the LLM reported for the user's runs that started this day.
    used = models.PositiveBigIntegerField(default=0)
    # Tokens held by runs still executing (their estimate), released when they end.
    reserved = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("user", "day"), name="token_usage_user_day"),
        )

    def __str__(self) -> str:
        return f"{self.user_id} {self.day}: {self.used} used, {self.reserved} reserved"
