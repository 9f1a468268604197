import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from agents.control import run_cancel
from agents.errors import RunNotActive
from agents.models import AgentRun, AgentThread, TokenUsage
from agents.tracing import trace_url
from evaluations.admin import AgentEvaluationInline, evaluate_selected_runs, scores_by_metric


class ReadOnlyAdminMixin:
    """Runs are records of what happened: nobody edits them by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _pre(text: str) -> str:
    return format_html(
        '<pre class="wrap" style="white-space: pre-wrap; margin: 0">{}</pre>', text or "—"
    )


def _truncate(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, for change lists (the detail page has it all)."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_text(text: str) -> str:
    """A tool's output, indented when it is JSON."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


@admin.action(description="Cancel selected runs (pending or running)")
def cancel_selected_runs(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[AgentRun]
) -> None:
    """Stop the selected runs wherever they execute, as ``POST /agent/runs/{id}/cancel``
    does; runs that have ended are left as they are."""
    asked = 0
    for run in queryset.filter(status__in=AgentRun.ACTIVE)[:1000]:
        try:
            run_cancel(run=run)
        except RunNotActive:  # it ended meanwhile
            continue
        asked += 1
    skipped = queryset.count() - asked
    text = f"Cancelled {asked} run(s): pending ones at once, running ones at their next step."
    if skipped:
        text += f" {skipped} had already ended."
    modeladmin.message_user(request, text, messages.SUCCESS if asked else messages.WARNING)


@admin.register(AgentRun)
class AgentRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created", "user", "status", "latency_ms", "total_tokens", "model", "thread_link",
        "short_input", "awaiting", "scores",
    )  # fmt: skip
    list_filter = (
        "status", "decision", "provider", "model", ("created_at", admin.DateFieldListFilter),
    )  # fmt: skip
    inlines = (AgentEvaluationInline,)
    actions = (evaluate_selected_runs, cancel_selected_runs)
    list_select_related = ("user", "thread")
    search_fields = ("input", "response", "user__email", "=id", "=thread__id")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over a big runs table is slow
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "user",
                    "thread_link",
                    "status",
                    "created_at",
                    "started_at",
                    "finished_at",
                )
            },
        ),
        (
            "Run control",
            {"fields": ("background", "multitask_strategy", "cancel_requested")},
        ),
        ("Approval", {"fields": ("interrupt_display", "decision", "resumed_from", "resume")}),
        ("Conversation", {"fields": ("input_display", "plan_display", "response_display")}),
        ("Tools", {"fields": ("tool_calls_display",)}),
        ("Error", {"fields": ("error_display",)}),
        (
            "Cost and timing",
            {
                "fields": (
                    "provider",
                    "model",
                    "latency_ms",
                    "prompt_tokens",
                    "completion_tokens",
                    "total_tokens",
                    "trace_link",
                )
            },
        ),
        ("Caller metadata", {"fields": ("metadata_display",), "classes": ("collapse",)}),
    )
    readonly_fields = (
        "id", "user", "thread_link", "status", "created_at", "started_at", "finished_at",
        "background", "multitask_strategy", "cancel_requested", "interrupt_display", "decision",
        "resumed_from", "resume", "input_display",
        "plan_display", "response_display", "tool_calls_display", "error_display", "provider",
        "model", "latency_ms", "prompt_tokens", "completion_tokens", "total_tokens", "trace_link",
        "metadata_display",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[AgentRun]:
        qs = super().get_queryset(request)
        # The list page never shows the heavy JSON columns: don't load them.
        match = request.resolver_match
        if match is not None and (match.url_name or "").endswith("_changelist"):
            qs = qs.defer("tool_calls", "metadata", "plan").prefetch_related("evaluations")
        return qs

    @admin.display(description="Created", ordering="created_at")
    def created(self, run: AgentRun) -> str:
        # A short date keeps every column of the list in view at 1280 px.
        return timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Scores (average per metric)")
    def scores(self, run: AgentRun) -> str:
        return scores_by_metric(run)

    @admin.display(description="Thread", ordering="thread")
    def thread_link(self, run: AgentRun) -> str:
        url = reverse("admin:agents_agentthread_change", args=[run.thread_id])
        title = str(run.thread)
        return format_html('<a href="{}" title="{}">{}</a>', url, title, _truncate(title, 40))

    @admin.display(description="Langfuse trace")
    def trace_link(self, run: AgentRun) -> str:
        url = trace_url(run.trace_id or None)
        if not url:
            return "— (not traced)"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, run.trace_id)

    @admin.display(description="Input")
    def short_input(self, run: AgentRun) -> str:
        return _truncate(run.input, 60)

    @admin.display(description="Waiting for approval")
    def awaiting(self, run: AgentRun) -> str:
        """An interrupted run's pending calls (tool names), while nobody has decided."""
        if run.status != AgentRun.Status.INTERRUPTED:
            return ""
        names = [str(c.get("name")) for c in (run.interrupt or {}).get("tool_calls") or []]
        text = ", ".join(names) or "—"
        return text if run.awaiting_decision else f"{text} ({run.get_decision_display()})"

    @admin.display(description="Calls waiting for approval")
    def interrupt_display(self, run: AgentRun) -> str:
        calls = (run.interrupt or {}).get("tool_calls") or []
        if not calls:
            return "—"
        return format_html_join(
            "",
            "<p><strong>{}</strong> <code>{}</code></p>",
            ((c.get("name"), json.dumps(c.get("args"), ensure_ascii=False)) for c in calls),
        )

    @admin.display(description="Input")
    def input_display(self, run: AgentRun) -> str:
        return _pre(run.input)

    @admin.display(description="Plan")
    def plan_display(self, run: AgentRun) -> str:
        return _pre(run.plan)

    @admin.display(description="Answer")
    def response_display(self, run: AgentRun) -> str:
        return _pre(run.response)

    @admin.display(description="Error")
    def error_display(self, run: AgentRun) -> str:
        return _pre(run.error)

    @admin.display(description="Metadata")
    def metadata_display(self, run: AgentRun) -> str:
        return _pre(json.dumps(run.metadata, indent=2, ensure_ascii=False))

    @admin.display(description="Tool calls")
    def tool_calls_display(self, run: AgentRun) -> str:
        if not run.tool_calls:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>"
            '<td><pre class="wrap" style="white-space: pre-wrap; margin: 0">{}</pre></td></tr>',
            (
                (
                    call.get("name"),
                    json.dumps(call.get("args"), ensure_ascii=False),
                    {True: "ok", False: "error"}.get(call.get("ok"), "not run"),
                    f"{call.get('duration_ms')} ms" if call.get("duration_ms") is not None else "",
                    _json_text(call.get("output") or ""),
                )
                for call in run.tool_calls
            ),
        )
        return format_html(
            "<table><thead><tr><th>Tool</th><th>Arguments</th><th>Outcome</th><th>Duration</th>"
            "<th>Output</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )


class AgentRunInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AgentRun
    fields = (
        "created_at", "status", "short_input", "short_response", "latency_ms", "total_tokens",
        "model",
    )  # fmt: skip
    readonly_fields = fields
    ordering = ("created_at",)
    extra = 0
    can_delete = False
    show_change_link = True

    # The whole text is on the run's own page (the change link); a row stays one line.
    @admin.display(description="Input")
    def short_input(self, run: AgentRun) -> str:
        return _truncate(run.input, 120)

    @admin.display(description="Answer")
    def short_response(self, run: AgentRun) -> str:
        return _truncate(run.response, 120)


@admin.register(AgentThread)
class AgentThreadAdmin(admin.ModelAdmin):
    list_display = ("short_title", "owner", "created_at", "updated_at")
    list_select_related = ("owner",)
    search_fields = ("title", "owner__email", "=id")
    readonly_fields = ("id", "owner", "created_at", "updated_at")
    fields = ("id", "title", "owner", "created_at", "updated_at")
    date_hierarchy = "updated_at"
    inlines = (AgentRunInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Title", ordering="title")
    def short_title(self, thread: AgentThread) -> str:
        return _truncate(str(thread), 80)


@admin.register(TokenUsage)
class TokenUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The daily token ledger: what the budget counts, kept when threads are deleted."""

    list_display = ("day", "user", "used", "reserved", "updated_at")
    list_filter = ("day",)
    list_select_related = ("user",)
    search_fields = ("user__email",)
    raw_id_fields = ("user",)
    date_hierarchy = "day"
    ordering = ("-day", "user__email")
