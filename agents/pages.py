"""Server-rendered pages: the chat. The browser talks to the streaming API with its session."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts.models import User
from agents import selectors

SIDEBAR_THREADS = 100


def chat_context(request: HttpRequest) -> dict[str, Any]:
    """Template context processor: whether to show the chat link."""
    return {"chat_enabled": settings.AGENT_CHAT_ENABLED}


@login_required
@ensure_csrf_cookie
def chat(request: HttpRequest, thread_id: uuid.UUID | None = None) -> HttpResponse:
    if not settings.AGENT_CHAT_ENABLED:
        raise Http404("The chat is disabled.")
    user = request.user
    assert isinstance(user, User)
    thread = None
    messages: list[dict[str, Any]] = []
    if thread_id is not None:
        thread = selectors.thread_get_for_user(user=user, thread_id=thread_id)
        if thread is None:
            raise Http404("No such conversation.")
        messages = selectors.thread_messages(thread=thread)
    context = {
        "thread": thread,
        "messages": messages,
        "threads": selectors.thread_list_for_user(user=user).order_by("-updated_at")[
            :SIDEBAR_THREADS
        ],
        "max_chars": settings.AGENT_MAX_MESSAGE_CHARS,
        # The feedback endpoint arrives with the evaluations work; until then, no thumbs.
        "feedback_enabled": False,
    }
    return render(request, "agents/chat.html", context)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")
