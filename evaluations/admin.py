"""Admin: scores (filter by metric, source, score range, date), evaluation jobs, and the pieces
``agents.admin`` adds to the run pages (scores inline, scores per metric, "Evaluate selected
runs")."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from agents.models import AgentRun
from evaluations import services
from evaluations.models import AgentEvaluation, EvaluationJob


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ScoreRangeFilter(admin.SimpleListFilter):
    title = "score"
    parameter_name = "score_range"
    RANGES = {
        "low": ("below 0.5", 0.0, 0.5),
        "mid": ("0.5 to 0.8", 0.5, 0.8),
        "high": ("0.8 and above", 0.8, 1.01),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _, _) in self.RANGES.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value not in self.RANGES:
            return queryset
        _, low, high = self.RANGES[value]
        return queryset.filter(score__gte=low, score__lt=high)


@admin.register(AgentEvaluation)
class AgentEvaluationAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("created_at", "run_link", "metric_name", "score", "source", "judge")
    list_filter = (
        "metric_name", "source", ScoreRangeFilter, ("created_at", admin.DateFieldListFilter),
    )  # fmt: skip
    list_select_related = ("run",)
    search_fields = ("=run__id", "metric_name", "run__user__email")
    raw_id_fields = ("run",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 50
    show_full_result_count = False
    fields = ("id", "run_link", "metric_name", "score", "source", "judge", "metadata_display",
              "created_at")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Run", ordering="run")
    def run_link(self, evaluation: AgentEvaluation) -> str:
        url = reverse("admin:agents_agentrun_change", args=[evaluation.run_id])
        return format_html('<a href="{}">{}</a>', url, evaluation.run_id)

    @admin.display(description="Judge")
    def judge(self, evaluation: AgentEvaluation) -> str:
        meta = evaluation.eval_metadata or {}
        if evaluation.source != AgentEvaluation.Source.JUDGE:
            return "—"
        model = str(meta.get("judge_model") or "?")
        return f"{model} (offline)" if meta.get("offline") and model != "offline" else model

    @admin.display(description="Metadata")
    def metadata_display(self, evaluation: AgentEvaluation) -> str:
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
            json.dumps(evaluation.eval_metadata, indent=2, ensure_ascii=False),
        )


@admin.register(EvaluationJob)
class EvaluationJobAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("created_at", "status", "progress_display", "requested_by", "backend",
                    "finished_at")  # fmt: skip
    list_filter = ("status", "backend", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("requested_by",)
    ordering = ("-created_at",)
    fields = (
        "id", "status", "progress_display", "requested_by", "backend", "params", "error",
        "report_display", "created_at", "started_at", "heartbeat_at", "finished_at",
    )  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[EvaluationJob]:
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and (match.url_name or "").endswith("_changelist"):
            qs = qs.defer("report")
        return qs

    @admin.display(description="Progress")
    def progress_display(self, job: EvaluationJob) -> str:
        progress = job.progress
        return f"{progress['completed']}/{progress['total']} ({progress['percent']}%)"

    @admin.display(description="Report")
    def report_display(self, job: EvaluationJob) -> str:
        if not job.report:
            return "—"
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
            json.dumps(job.report, indent=2, ensure_ascii=False),
        )


# -- what agents.admin adds to the run pages --------------------------------------------------


class AgentEvaluationInline(_ReadOnly, admin.TabularInline):
    model = AgentEvaluation
    fields = ("metric_name", "score", "source", "reasoning", "created_at")
    readonly_fields = fields
    ordering = ("metric_name", "source")
    extra = 0
    can_delete = False
    verbose_name = "score"
    verbose_name_plural = "scores"

    @admin.display(description="Reasoning / comment")
    def reasoning(self, evaluation: AgentEvaluation) -> str:
        meta = evaluation.eval_metadata or {}
        text = str(meta.get("reasoning") or meta.get("comment") or "")
        return text if len(text) <= 300 else text[:299] + "…"


def scores_by_metric(run: AgentRun) -> str:
    """A run's average score per metric (over its sources), for the run list: prefetch
    ``evaluations`` there."""
    values: dict[str, list[float]] = defaultdict(list)
    for evaluation in run.evaluations.all():
        values[evaluation.metric_name].append(evaluation.score)
    if not values:
        return "—"
    return ", ".join(f"{name} {sum(v) / len(v):.2f}" for name, v in sorted(values.items()))


@admin.action(description="Evaluate selected runs")
def evaluate_selected_runs(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[AgentRun]
) -> None:
    run_ids = list(queryset.values_list("id", flat=True)[:1000])
    job = services.job_create(requested_by=request.user, run_ids=run_ids)  # type: ignore[arg-type]
    url = reverse("admin:evaluations_evaluationjob_change", args=[job.id])
    modeladmin.message_user(
        request,
        format_html(
            'Evaluation of {} run(s) queued: <a href="{}">job {}</a>. Runs already scored on '
            "a metric are not judged again.",
            len(run_ids),
            url,
            job.id,
        ),
        messages.SUCCESS,
    )
