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
from agents.control import approval_expire_if_due
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


def _tool_call_view(call: dict[str, Any], *, paused: bool = False) -> dict[str, Any]:
    ok = call.get("ok")
    # A call its run left waiting for a decision: what came of it is the resumed run's to say.
    not_run = "paused for approval" if paused else "not run"
    outcome = not_run if ok is None else "ok" if ok else "failed"
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


def _approval(run: AgentRun, resumed_with: dict[str, Any] | None) -> str:
    """An interrupted run's approval card, as JSON for chat.js to render (the same code as a
    live ``interrupt`` event): its pending calls, the decision, and what the run that resumed
    it was given (edited ``args``, a rejection's ``comment``). Empty for other runs."""
    if run.status != AgentRun.Status.INTERRUPTED:
        return ""
    resume = resumed_with or {}
    card = {
        "run_id": str(run.id),
        "tool_calls": list((run.interrupt or {}).get("tool_calls") or []),
        "decision": run.decision,
        "args": resume.get("args"),
        "tool_call_id": resume.get("tool_call_id"),
        "comment": resume.get("comment") or "",
    }
    return json.dumps(card, ensure_ascii=False)


def turn_view(run: AgentRun, *, resumed_with: dict[str, Any] | None = None) -> dict[str, Any]:
    """One question and its answer as the live chat showed them: plan, tool calls, meta line.

    A run still pending or running has no answer in its record yet: the page marks it
    ``active`` and the chat joins its stream. An interrupted run carries its approval card
    (``resumed_with``: the decision of the run that resumed it); a resumed run is the
    continuation of the turn above it, without the question again (and without the plan,
    which it inherited from that turn)."""
    stopped = run.status == AgentRun.Status.ERROR and run.error.startswith("cancelled")
    failed = run.status == AgentRun.Status.ERROR and not stopped
    resumed = run.resumed_from_id is not None
    paused = run.status == AgentRun.Status.INTERRUPTED
    return {
        "run_id": str(run.id),
        "active": run.status in AgentRun.ACTIVE,
        "resumed": resumed,
        "input": run.input,
        "response": run.response,
        "plan": "" if resumed else run.plan,
        "tool_calls": [_tool_call_view(call, paused=paused) for call in run.tool_calls or []],
        "approval": _approval(run, resumed_with),
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
        runs = list(selectors.run_list_for_thread(thread=thread))
        resumes = {run.resumed_from_id: run.resume for run in runs if run.resumed_from_id}
        turns = [
            turn_view(
                # An approval nobody gave in time is closed when it is next seen, here too.
                approval_expire_if_due(run) if run.awaiting_decision else run,
                resumed_with=resumes.get(run.id),
            )
            for run in runs
        ]
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
