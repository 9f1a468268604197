"""Server-rendered pages: the chat. The browser talks to the streaming API with its session."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts.models import User
from agents import selectors
from agents.errors import AgentRunError
from agents.models import AgentRun
from agents.tracing import trace_url

SIDEBAR_THREADS = 100
SUMMARY_CHARS = 200
# run.error is "<code>: <what happened>"; the code is for machines, the rest for the person.
_ERROR_PREFIX = re.compile(r"^([a-z_]+): ")


def chat_context(request: HttpRequest) -> dict[str, Any]:
    """Template context processor: whether to show the chat link."""
    return {"chat_enabled": settings.AGENT_CHAT_ENABLED}


def _short(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_call_view(call: dict[str, Any]) -> dict[str, Any]:
    ok = call.get("ok")
    outcome = "not run" if ok is None else "ok" if ok else "failed"
    # Runs recorded before tool calls kept their live summary show their output, shortened.
    summary = call.get("summary") or _short(str(call.get("output") or ""))
    return {
        "name": call.get("name") or "",
        # JSON, as the live view shows it (the stored args are JSON already).
        "args": json.dumps(call.get("args"), ensure_ascii=False, separators=(",", ":")),
        "outcome": outcome.replace(" ", "-"),
        "outcome_label": outcome,
        "summary": summary if ok is not None else "",
    }


def _error_text(error: str) -> str:
    match = _ERROR_PREFIX.match(error)
    if match is None:
        return error or AgentRunError.default_detail
    if match.group(1) == AgentRunError.code:  # an unexpected crash: its text is for the logs
        return AgentRunError.default_detail
    return error[match.end() :]


def _meta(run: AgentRun) -> str:
    if run.status != AgentRun.Status.SUCCESS:
        return ""
    parts = [run.model]
    if run.latency_ms is not None:
        parts.append(f"{run.latency_ms / 1000:.1f} s")
    if run.total_tokens is not None:
        parts.append(f"{run.total_tokens} tokens")
    return " · ".join(parts)


def turn_view(run: AgentRun) -> dict[str, Any]:
    """One question and its answer as the live chat showed them: plan, tool calls, meta line.

    A run still pending or running has no answer in its record yet: the page marks it
    ``active`` and the chat joins its stream."""
    stopped = run.status == AgentRun.Status.ERROR and run.error.startswith("cancelled")
    failed = run.status == AgentRun.Status.ERROR and not stopped
    return {
        "run_id": str(run.id),
        "active": run.status in AgentRun.ACTIVE,
        "input": run.input,
        "response": run.response,
        "plan": run.plan,
        "tool_calls": [_tool_call_view(call) for call in run.tool_calls or []],
        "failed": failed,
        "stopped": stopped,
        "error": _error_text(run.error) if failed else "",
        "meta": _meta(run),
        "trace_url": trace_url(run.trace_id or None) if run.status == "success" else None,
    }


@login_required
@ensure_csrf_cookie
def chat(request: HttpRequest, thread_id: uuid.UUID | None = None) -> HttpResponse:
    if not settings.AGENT_CHAT_ENABLED:
        raise Http404("The chat is disabled.")
    user = request.user
    assert isinstance(user, User)
    thread = None
    turns: list[dict[str, Any]] = []
    if thread_id is not None:
        thread = selectors.thread_get_for_user(user=user, thread_id=thread_id)
        if thread is None:
            raise Http404("No such conversation.")
        # The run records, not the checkpointer: they hold what the live view showed.
        turns = [turn_view(run) for run in selectors.run_list_for_thread(thread=thread)]
    context = {
        "thread": thread,
        "turns": turns,
        "threads": selectors.thread_list_for_user(user=user).order_by("-updated_at")[
            :SIDEBAR_THREADS
        ],
        "max_chars": settings.AGENT_MAX_MESSAGE_CHARS,
        "offline_model": (
            settings.LLM_MODEL_NAME if settings.LLM_MODEL_PROVIDER == "offline" else None
        ),
        # The feedback endpoint arrives with the evaluations work; until then, no thumbs.
        "feedback_enabled": False,
    }
    return render(request, "agents/chat.html", context)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")
