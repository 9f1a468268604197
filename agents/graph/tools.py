"""Every tool the model sees, with its prompt (the tool's description is written for the model).

* Database look-ups (``lookup_user_by_email``, ``lookup_item_by_id``, ``lookup_user_items``,
  ``list_users``) go through an injected, caller-scoped :class:`Directory`;
  ``agents.directory.tools_for_user`` builds one for the caller and passes it in.
* ``http_get`` and ``http_post`` fetch through ``agents.graph.fetch`` under the URL policy of
  ``agents.graph.ssrf``.

Nothing here imports Django. Every tool returns a JSON string; failures are JSON too, never
exceptions: :func:`tool_error` writes one, :func:`read_tool_error` reads one.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, Protocol

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from agents.graph.fetch import FetchError, HttpToolConfig, fetch

__all__ = [
    "Directory",
    "Record",
    "ToolError",
    "build_tools",
    "create_database_tools",
    "create_http_tools",
    "read_tool_error",
    "tool_error",
]

logger = logging.getLogger(__name__)

Record = dict[str, Any]


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def tool_error(message: str, *, code: str, **details: Any) -> str:
    """A tool's failure as the JSON string the model reads: ``{"error": message, "code": code}``
    (and ``details``, if any)."""
    return _json({"error": message, "code": code, **details})


class ToolError(NamedTuple):
    """A tool error read back: what the model was told, and the machine-readable code."""

    message: str
    code: str

    def __str__(self) -> str:
        return self.message


def read_tool_error(content: str) -> ToolError | None:
    """The error if ``content`` is a tool error (see :func:`tool_error`), else ``None``."""
    try:
        data = json.loads(content)
    except (TypeError, ValueError):
        return None
    if isinstance(data, dict) and "error" in data:
        return ToolError(message=str(data["error"]), code=str(data.get("code") or "error"))
    return None


# -- database tools --------------------------------------------------------------------------


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


def _not_found(what: str) -> str:
    return tool_error(f"{what} not found", code="not_found")


def _guarded(func: Callable[..., str]) -> Callable[..., str]:
    """A tool must answer the model even when the database does not."""

    def wrapper(**kwargs: Any) -> str:
        try:
            return func(**kwargs)
        except Exception as exc:  # the model gets an error result; the run goes on
            return tool_error(f"lookup failed: {type(exc).__name__}", code="tool_error")

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


# -- HTTP tools ------------------------------------------------------------------------------


class HttpGetArgs(BaseModel):
    url: str = Field(
        description="Absolute http:// or https:// URL to fetch.", min_length=1, max_length=8192
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description="Optional extra request headers, e.g. {'Accept': 'application/json'}.",
    )


class HttpPostArgs(BaseModel):
    url: str = Field(
        description="Absolute http:// or https:// URL to post to.", min_length=1, max_length=8192
    )
    json_body: dict[str, Any] | list[Any] | None = Field(
        default=None,
        description="JSON object or array to send as the request body "
        "(sent with Content-Type: application/json). Use this OR `data`, not both.",
    )
    data: str | None = Field(
        default=None,
        description="Raw string body (sent as text/plain unless you set a Content-Type header, "
        "e.g. application/x-www-form-urlencoded). Use this OR `json_body`, not both.",
    )
    headers: dict[str, str] | None = Field(
        default=None, description="Optional extra request headers."
    )


_LIMITS_TEXT = (
    "Only public internet addresses can be reached: localhost, private/intranet networks and "
    "cloud metadata services are refused{hosts}. Redirects are followed (at most {redirects}); "
    "the whole call times out after {timeout:g} seconds and the body is cut off after "
    '{cap} bytes (then "truncated" is true). Binary bodies are omitted. '
    "Host, Content-Length, Connection, Proxy-* and User-Agent headers you pass are ignored; "
    "Authorization and Cookie headers are dropped if a redirect leaves the original site.\n"
    'Returns a JSON string. On success: {{"status_code", "url" (final URL after redirects), '
    '"content_type", "body", "truncated"}} - a 4xx/5xx status is still a success result, '
    'read the body for details. On failure: {{"error": message, "code": one of blocked, '
    "invalid_url, dns_error, timeout, connection_error, tls_error, too_many_redirects, "
    'invalid_request, http_error}}. Do not retry a "blocked" URL or variations of it.'
)


def _limits(config: HttpToolConfig) -> str:
    hosts = (
        "; only these hosts are permitted: " + ", ".join(config.allowed_hosts)
        if config.allowed_hosts
        else ""
    )
    return _LIMITS_TEXT.format(
        hosts=hosts,
        redirects=config.max_redirects,
        timeout=config.timeout_seconds,
        cap=config.max_response_bytes,
    )


def _request(
    config: HttpToolConfig,
    method: Literal["GET", "POST"],
    url: str,
    headers: dict[str, str] | None,
    content: bytes | None = None,
    content_type: str | None = None,
) -> str:
    try:
        result = fetch(
            config,
            method=method,
            url=url,
            headers=headers,
            content=content,
            content_type=content_type,
        )
    except FetchError as exc:
        return tool_error(exc.message, code=exc.code)
    except Exception as exc:  # the tool contract is "never raise"; keep the graph alive
        logger.exception("http tool failed unexpectedly for %s", url)
        return tool_error(f"{type(exc).__name__}: {exc}", code="internal_error")
    return json.dumps(
        {
            "status_code": result.status_code,
            "url": result.url,
            "content_type": result.content_type,
            "body": result.body,
            "truncated": result.truncated,
        }
    )


def create_http_tools(config: HttpToolConfig) -> list[BaseTool]:
    """Build ``[http_get, http_post]`` bound to ``config``.

    The tools never raise for request problems; they return a JSON error object instead.
    Arguments that do not match the schema (e.g. a missing ``url``) raise
    ``pydantic.ValidationError`` from ``invoke``; LangGraph's ``ToolNode`` turns that into an
    error ``ToolMessage`` for the model, so we do not swallow it here.
    """

    def http_get(url: str, headers: dict[str, str] | None = None) -> str:
        return _request(config, "GET", url, headers)

    def http_post(
        url: str,
        json_body: dict[str, Any] | list[Any] | None = None,
        data: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        if json_body is not None and data is not None:
            return tool_error("Pass either json_body or data, not both.", code="invalid_request")
        if json_body is not None:
            return _request(
                config,
                "POST",
                url,
                headers,
                json.dumps(json_body).encode(),
                "application/json",
            )
        if data is not None:
            return _request(
                config, "POST", url, headers, data.encode(), "text/plain; charset=utf-8"
            )
        return _request(config, "POST", url, headers, b"", None)

    limits = _limits(config)
    get_tool = StructuredTool.from_function(
        func=http_get,
        name="http_get",
        description=(
            "Fetch a web page or HTTP API with a GET request and return the response body as "
            "text. Use it to read documentation, public APIs or pages the user refers to.\n"
            + limits
        ),
        args_schema=HttpGetArgs,
    )
    post_tool = StructuredTool.from_function(
        func=http_post,
        name="http_post",
        description=(
            "Send an HTTP POST request, e.g. to call a public JSON API. Put a JSON payload in "
            "`json_body` (object or array) or a raw string in `data` (set a Content-Type "
            "header for forms), never both. Only use it when the user's task requires "
            "submitting data; prefer http_get for reading.\n" + limits
        ),
        args_schema=HttpPostArgs,
    )
    return [get_tool, post_tool]


# -- the registry ----------------------------------------------------------------------------


def build_tools(directory: Directory | None, http: HttpToolConfig | None) -> list[BaseTool]:
    """The registry for one run: database tools for the caller, HTTP tools when enabled."""
    tools: list[BaseTool] = []
    if directory is not None:
        tools.extend(create_database_tools(directory))
    if http is not None:
        tools.extend(create_http_tools(http))
    return tools
