"""What one caller may see in the database, for the agent's tools, and the caller's tool registry.

:class:`ScopedDirectory` is the ``agents.graph.tools.Directory`` of one user: the look-ups the
database tools make, through the ``accounts`` selectors, scoped to that user.
:func:`tools_for_user` is the one entry point that gives a run its tools; :func:`tool_templates`
are the same tools bound to nobody, which the graph (compiled once per process) is built with.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections
from langchain_core.tools import BaseTool

from accounts import selectors as account_selectors
from accounts.models import Item, User
from agents.graph.fetch import HttpToolConfig
from agents.graph.tools import Record, build_tools

T = TypeVar("T")


def _user_record(user: User) -> Record:
    # Never the password hash, tokens or permissions: only what a person would show.
    return {
        "id": str(user.id),
        "email": user.email,
        "full_name": user.full_name,
        "is_active": user.is_active,
        "is_superuser": user.is_superuser,
    }


def _item_record(item: Item) -> Record:
    return {
        "id": str(item.id),
        "title": item.title,
        "description": item.description,
        "owner_id": str(item.owner_id),
        "created_at": item.created_at.isoformat(),
    }


def _closes_foreign_connections(func: Callable[..., T]) -> Callable[..., T]:
    """LangGraph runs nodes on its own worker threads. Django opens a connection per thread and
    never closes one a finished worker leaves behind, so a tool running off the caller's thread
    closes its connections when done."""

    @functools.wraps(func)
    def wrapper(self: ScopedDirectory, *args: Any, **kwargs: Any) -> T:
        try:
            return func(self, *args, **kwargs)
        finally:
            if threading.get_ident() != self.owner_thread:
                connections.close_all()

    return wrapper


class ScopedDirectory:
    """What one caller may see: themself and their items; a superuser, everything.

    Anything out of scope answers exactly like something that does not exist.
    """

    def __init__(self, user: User) -> None:
        self.user = user
        self.owner_thread = threading.get_ident()

    @_closes_foreign_connections
    def user_by_email(self, email: str) -> Record | None:
        found = (
            account_selectors.user_list(actor=self.user).filter(email__iexact=email.strip()).first()
        )
        return _user_record(found) if found else None

    @_closes_foreign_connections
    def item_by_id(self, item_id: uuid.UUID) -> Record | None:
        item = account_selectors.item_list_for_user(actor=self.user).filter(pk=item_id).first()
        return _item_record(item) if item else None

    @_closes_foreign_connections
    def user_items(self, user_id: uuid.UUID | None, limit: int) -> list[Record] | None:
        owner_id = user_id or self.user.id
        if not account_selectors.user_list(actor=self.user).filter(pk=owner_id).exists():
            return None
        items = account_selectors.item_list_for_user(actor=self.user).filter(owner_id=owner_id)
        return [_item_record(item) for item in items[:limit]]

    @_closes_foreign_connections
    def users(self, limit: int) -> list[Record]:
        return [_user_record(u) for u in account_selectors.user_list(actor=self.user)[:limit]]


def http_tool_config() -> HttpToolConfig | None:
    """The HTTP tools' limits and URL policy from the ``HTTP_TOOL_*`` settings; ``None`` when
    ``HTTP_TOOLS_ENABLED`` is off."""
    if not settings.HTTP_TOOLS_ENABLED:
        return None
    return HttpToolConfig(
        timeout_seconds=settings.HTTP_TOOL_TIMEOUT_SECONDS,
        max_response_bytes=settings.HTTP_TOOL_MAX_RESPONSE_BYTES,
        allowed_hosts=tuple(settings.HTTP_TOOL_ALLOWED_HOSTS),
        allowed_networks=tuple(settings.HTTP_TOOL_ALLOWED_NETWORKS),
    )


class _NoCaller:
    """The directory of the graph's template tools: a look-up through it is a bug, and fails
    closed (the tool answers an error), never with someone's data."""

    def _refuse(self, *args: Any) -> Any:
        raise RuntimeError("a template tool ran: pass the run's tools in its RunContext")

    user_by_email = item_by_id = user_items = users = _refuse


def tool_templates(http: HttpToolConfig | None) -> list[BaseTool]:
    """The tools every run has, with their names, prompts and schemas, bound to no caller."""
    return build_tools(_NoCaller(), http)


def tools_for_user(*, user: User | None) -> list[BaseTool]:
    """The tools of one run by ``user``: the database tools scoped to them (none without a
    user) and the HTTP tools when enabled."""
    directory = ScopedDirectory(user) if user is not None else None
    return build_tools(directory, http_tool_config())
