"""The tool registry. Database look-ups go through an injected, caller-scoped ``Directory``.

Nothing here imports Django: ``agents.tools.get_all_tools`` builds a directory for one caller
and passes it in. Every tool returns a JSON string; failures are JSON too, never exceptions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from agents.graph.http_tools import HttpToolConfig, create_http_tools

Record = dict[str, Any]


class Directory(Protocol):
    """What the database tools may see: already scoped to the calling user."""

    def user_by_email(self, email: str) -> Record | None: ...
    def item_by_id(self, item_id: uuid.UUID) -> Record | None: ...
    def user_items(self, user_id: uuid.UUID | None, limit: int) -> list[Record] | None: ...
    def users(self, limit: int) -> list[Record]: ...


class UserLookupInput(BaseModel):
    email: str = Field(max_length=254, description="The user's email address, e.g. ada@example.com")


class ItemLookupInput(BaseModel):
    item_id: uuid.UUID = Field(description="The item's UUID")


class UserItemsLookupInput(BaseModel):
    user_id: uuid.UUID | None = Field(
        default=None, description="The owner's UUID; leave empty for the current user's items"
    )
    limit: int = Field(default=10, ge=1, le=50, description="How many items at most")


class UsersListInput(BaseModel):
    limit: int = Field(default=20, ge=1, le=100, description="How many users at most")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _not_found(what: str) -> str:
    return _json({"error": f"{what} not found", "code": "not_found"})


def _guarded(func: Callable[..., str]) -> Callable[..., str]:
    """A tool must answer the model even when the database does not."""

    def wrapper(**kwargs: Any) -> str:
        try:
            return func(**kwargs)
        except Exception as exc:  # the model gets an error result; the run goes on
            return _json({"error": f"lookup failed: {type(exc).__name__}", "code": "tool_error"})

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def create_database_tools(directory: Directory) -> list[BaseTool]:
    def lookup_user_by_email(email: str) -> str:
        user = directory.user_by_email(str(email))
        return _json({"user": user}) if user else _not_found(f"user with email {email}")

    def lookup_item_by_id(item_id: uuid.UUID) -> str:
        item = directory.item_by_id(item_id)
        return _json({"item": item}) if item else _not_found(f"item {item_id}")

    def lookup_user_items(user_id: uuid.UUID | None = None, limit: int = 10) -> str:
        items = directory.user_items(user_id, limit)
        if items is None:
            return _not_found(f"user {user_id}")
        return _json({"user_id": user_id, "items": items, "count": len(items)})

    def list_users(limit: int = 20) -> str:
        users = directory.users(limit)
        return _json({"users": users, "count": len(users)})

    return [
        StructuredTool.from_function(
            func=_guarded(lookup_user_by_email),
            name="lookup_user_by_email",
            description=(
                "Find a user of this application by email address. Returns the user's id, "
                "email, full name and status, or a not_found error."
            ),
            args_schema=UserLookupInput,
        ),
        StructuredTool.from_function(
            func=_guarded(lookup_item_by_id),
            name="lookup_item_by_id",
            description="Find an item by its UUID. Returns title, description and owner id.",
            args_schema=ItemLookupInput,
        ),
        StructuredTool.from_function(
            func=_guarded(lookup_user_items),
            name="lookup_user_items",
            description=(
                "List the items a user owns, newest first. Leave user_id empty for the items "
                "of the person you are talking to."
            ),
            args_schema=UserItemsLookupInput,
        ),
        StructuredTool.from_function(
            func=_guarded(list_users),
            name="list_users",
            description=(
                "List the users of this application that the person you are talking to may see."
            ),
            args_schema=UsersListInput,
        ),
    ]


def build_tools(directory: Directory | None, http: HttpToolConfig | None) -> list[BaseTool]:
    """The registry for one run: database tools for the caller, HTTP tools when enabled."""
    tools: list[BaseTool] = []
    if directory is not None:
        tools.extend(create_database_tools(directory))
    if http is not None:
        tools.extend(create_http_tools(http))
    return tools
