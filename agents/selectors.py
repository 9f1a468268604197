"""Reads for agents, always scoped to the asking user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from agents.models import AgentRun, AgentThread, TokenUsage


def run_list_for_user(*, user: User, filters: dict[str, Any] | None = None) -> QuerySet[AgentRun]:
    """The caller's runs; a superuser may ask for another user's with ``filters["user"]``."""
    filters = filters or {}
    # No joins: the list shows thread_id and user_id, and (user, -created_at) serves the page.
    qs = AgentRun.objects.all()
    if user.is_superuser and filters.get("user"):
        qs = qs.filter(user_id=filters["user"])
    else:
        qs = qs.filter(user=user)
    if filters.get("thread_id"):
        qs = qs.filter(thread_id=filters["thread_id"])
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("created_after"):
        qs = qs.filter(created_at__gte=filters["created_after"])
    if filters.get("created_before"):
        qs = qs.filter(created_at__lt=filters["created_before"])
    return qs


def run_get_for_user(*, user: User, run_id: uuid.UUID) -> AgentRun | None:
    """One run: the caller's own, or any run for a superuser."""
    qs = AgentRun.objects.select_related("thread", "user")
    if not user.is_superuser:
        qs = qs.filter(user=user)
    return qs.filter(pk=run_id).first()


def thread_list_for_user(*, user: User) -> QuerySet[AgentThread]:
    """The caller's own threads: conversations are private, even from superusers here."""
    return AgentThread.objects.filter(owner=user)


def thread_get_for_user(*, user: User, thread_id: uuid.UUID) -> AgentThread | None:
    return thread_list_for_user(user=user).filter(pk=thread_id).first()


def _message_record(message: Any) -> dict[str, Any] | None:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    if isinstance(message, HumanMessage):
        return {"role": "user", "content": message.text}
    if isinstance(message, AIMessage):
        return {
            "role": "assistant",
            "content": message.text,
            "tool_calls": [
                {"id": c.get("id"), "name": c.get("name"), "args": c.get("args")}
                for c in message.tool_calls
            ],
        }
    if isinstance(message, ToolMessage):
        return {
            "role": "tool",
            "content": message.text,
            "name": message.name,
            "tool_call_id": message.tool_call_id,
            "status": message.status,
        }
    return None


def thread_messages(*, thread: AgentThread) -> list[dict[str, Any]]:
    """The conversation as the checkpointer remembers it: role, content, tool calls."""
    from agents.checkpointer import get_checkpointer

    checkpoint = get_checkpointer().get_tuple(
        {"configurable": {"thread_id": str(thread.id), "checkpoint_ns": ""}}
    )
    if checkpoint is None:
        return []
    messages = checkpoint.checkpoint.get("channel_values", {}).get("messages") or []
    return [record for m in messages if (record := _message_record(m)) is not None]


def utc_day_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of ``now``'s day: when daily token budgets start again."""
    now = (now or timezone.now()).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def token_usage_today(*, user: User) -> tuple[int, int]:
    """``(used, reserved)`` on the user's token ledger for today (UTC): tokens the LLM reported
    for the user's runs started today, whether or not they are still stored, and the tokens
    runs in progress hold."""
    row = (
        TokenUsage.objects.filter(user=user, day=utc_day_start().date())
        .values_list("used", "reserved")
        .first()
    )
    return (int(row[0]), int(row[1])) if row else (0, 0)


def tokens_used_today(*, user: User) -> int:
    """Tokens the user's runs used today (UTC), as the LLM reported them (``TokenUsage``)."""
    return token_usage_today(user=user)[0]


def run_list_for_thread(*, thread: AgentThread) -> QuerySet[AgentRun]:
    """A thread's runs in the order they were asked: what the chat page shows on a reload."""
    return AgentRun.objects.filter(thread=thread).order_by("created_at")
