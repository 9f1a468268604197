"""A deterministic, local chat model used when no LLM key is configured.

``OfflineChatModel`` never touches the network. It reads the conversation, spots simple
intents in the last human message (email addresses, UUIDs, "my items", "users", http(s)
URLs) and answers the way a tool-calling LLM would, so the whole agent loop
(plan -> tool calls -> answer) works on a fresh checkout:

* **Planner mode** (called without tools): returns a short numbered plan that names the
  tools it would use.
* **Executor mode** (called through :meth:`OfflineChatModel.bind_tools`):

  - if tools already answered after the last human message, it writes the final answer
    from those tool results (users, items, counts, http responses, errors);
  - otherwise it emits one ``AIMessage`` with a tool call per detected intent, only for
    tools that are actually bound;
  - if nothing applies it answers directly, quoting the conversation to show memory.

The same input always produces the same output (content, tool calls, ids and usage).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agents.graph.tools import ToolError, read_tool_error

__all__ = [
    "KNOWN_TOOLS",
    "MODEL_PROVIDER",
    "OfflineChatModel",
    "PlannedCall",
    "count_tokens",
    "detect_calls",
]

MODEL_PROVIDER = "offline"

#: Tools the offline model knows how to use (it only calls the ones that are bound).
KNOWN_TOOLS: tuple[str, ...] = (
    "lookup_user_by_email",
    "lookup_item_by_id",
    "lookup_user_items",
    "list_users",
    "http_get",
)

_QUOTE_LIMIT = 200
_EXCERPT_LIMIT = 200
_LIST_LIMIT = 20

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_URL_RE = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_UUID_RE = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE
)
_ITEMS_RE = re.compile(r"\bitems?\b", re.IGNORECASE)
# Always means "list the users", even when the message also names someone by email.
_STRONG_USERS_RE = re.compile(
    r"\b(?:which|what|all|list(?:\s+of)?|how\s+many)\s+(?:the\s+)?users?\b", re.IGNORECASE
)
# Means "list the users" only when no specific email was given.
_WEAK_USERS_RE = re.compile(r"\busers\b|\bwho(?:'s|\s+is|\s+are)\b", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""

_CAPABILITIES: dict[str, str] = {
    "lookup_user_by_email": "a user by email",
    "lookup_item_by_id": "an item by its id",
    "lookup_user_items": "your items",
    "list_users": "the users in the system",
    "http_get": "an http(s) URL",
}


def count_tokens(text: str) -> int:
    """Count tokens with a simple deterministic tokenizer (words and punctuation)."""
    return len(_TOKEN_RE.findall(text))


@dataclass(frozen=True)
class PlannedCall:
    """A tool call the offline model wants to make, with a human readable plan step."""

    name: str
    args: dict[str, Any]
    step: str


@dataclass
class _Reply:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)


def detect_calls(text: str) -> list[PlannedCall]:
    """Detect tool calls implied by a user message, in a stable order.

    Emails -> ``lookup_user_by_email``; UUIDs -> ``lookup_item_by_id``; "items" without
    a UUID -> ``lookup_user_items``; "users"/"who is" -> ``list_users``; http(s) URLs ->
    ``http_get``. Emails and UUIDs inside URLs are ignored (the URL is fetched instead).
    """
    urls = _unique(_clean_url(m) for m in _URL_RE.findall(text))
    rest = _URL_RE.sub(" ", text)
    emails = _unique(_EMAIL_RE.findall(rest))
    uuids = _unique(u.lower() for u in _UUID_RE.findall(_EMAIL_RE.sub(" ", rest)))

    calls = [
        PlannedCall(
            "lookup_user_by_email",
            {"email": email},
            f"Look up the user with email {email} using lookup_user_by_email.",
        )
        for email in emails
    ]
    calls += [
        PlannedCall(
            "lookup_item_by_id",
            {"item_id": item_id},
            f"Look up the item with id {item_id} using lookup_item_by_id.",
        )
        for item_id in uuids
    ]
    if not uuids and _ITEMS_RE.search(rest):
        calls.append(
            PlannedCall("lookup_user_items", {}, "List your items using lookup_user_items.")
        )
    if _STRONG_USERS_RE.search(rest) or (not emails and _WEAK_USERS_RE.search(rest)):
        calls.append(
            PlannedCall("list_users", {}, "List the users in the system using list_users.")
        )
    calls += [PlannedCall("http_get", {"url": url}, f"Fetch {url} using http_get.") for url in urls]
    return calls


class OfflineChatModel(BaseChatModel):
    """Deterministic local chat model: no network, no key, same input -> same output.

    Use ``model.bind_tools(tools)`` for the executor; call the model directly (no tools)
    for the planner. ``stream_delay`` adds a pause between streamed chunks for demos.
    """

    model_name: str = "offline"
    stream_delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (converted to OpenAI tool specs) so the model can call them."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    # -- generation -------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._reply(messages, stop, kwargs.get("tools"))
        message = AIMessage(
            content=reply.text,
            tool_calls=reply.tool_calls,
            usage_metadata=self._usage(messages, reply),
            response_metadata=self._response_metadata(reply),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages, stop, kwargs.get("tools"))
        first_meta = {"model_provider": MODEL_PROVIDER}
        parts: list[dict[str, Any]] = [{"content": piece} for piece in _split_words(reply.text)]
        parts += [
            {
                "content": "",
                "tool_call_chunks": [
                    tool_call_chunk(
                        name=call["name"],
                        args=json.dumps(call["args"], sort_keys=True),
                        id=call["id"],
                        index=index,
                    )
                ],
            }
            for index, call in enumerate(reply.tool_calls)
        ]
        if not parts:
            parts.append({"content": ""})
        parts[-1].update(
            usage_metadata=self._usage(messages, reply),
            response_metadata=self._response_metadata(reply),
            chunk_position="last",
        )
        for position, part in enumerate(parts):
            if position and self.stream_delay > 0:
                time.sleep(self.stream_delay)
            part.setdefault("response_metadata", dict(first_meta))
            yield ChatGenerationChunk(message=AIMessageChunk(**part))

    # -- helpers ----------------------------------------------------------------------

    def _response_metadata(self, reply: _Reply) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_provider": MODEL_PROVIDER,
            "finish_reason": "tool_calls" if reply.tool_calls else "stop",
        }

    def _usage(self, messages: Sequence[BaseMessage], reply: _Reply) -> UsageMetadata:
        input_tokens = 0
        for message in messages:
            input_tokens += count_tokens(_text(message.content))
            if isinstance(message, AIMessage):
                input_tokens += sum(count_tokens(_call_json(c)) for c in message.tool_calls)
        output_tokens = count_tokens(reply.text) + sum(
            count_tokens(_call_json(c)) for c in reply.tool_calls
        )
        return UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )

    def _reply(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        tools: Sequence[Any] | None,
    ) -> _Reply:
        reply = _plan(messages) if tools is None else _execute(messages, _tool_names(tools))
        if stop and reply.text:
            cut = min((i for s in stop if s and (i := reply.text.find(s)) >= 0), default=-1)
            if cut >= 0:
                reply.text = reply.text[:cut]
        return reply


# -- modes ------------------------------------------------------------------------------


def _plan(messages: Sequence[BaseMessage]) -> _Reply:
    human_index = _last_human_index(messages)
    text = _text(messages[human_index].content) if human_index is not None else ""
    steps = [call.step for call in detect_calls(text)]
    if steps:
        steps.append("Answer from what the tools return.")
    else:
        steps = ["Answer directly from the conversation so far."]
    return _Reply("\n".join(f"{n}. {step}" for n, step in enumerate(steps, start=1)))


def _execute(messages: Sequence[BaseMessage], bound: list[str]) -> _Reply:
    human_index = _last_human_index(messages)
    if human_index is None:
        return _Reply(
            "I'm the offline model (no LLM key is configured), so I can only look things up. "
            "I did not receive a question yet."
        )
    after = messages[human_index + 1 :]
    tool_messages = [m for m in after if isinstance(m, ToolMessage)]
    if tool_messages:
        return _Reply(_final_answer(after, tool_messages))

    text = _text(messages[human_index].content)
    wanted = detect_calls(text)
    usable = [call for call in wanted if call.name in bound]
    if usable:
        seed = f"{human_index}:{text}"
        return _Reply(
            "",
            [
                tool_call(name=call.name, args=dict(call.args), id=_call_id(seed, n, call))
                for n, call in enumerate(usable)
            ],
        )
    missing = _unique(call.name for call in wanted)
    return _Reply(_direct_answer(messages, human_index, text, bound, missing))


def _direct_answer(
    messages: Sequence[BaseMessage],
    human_index: int,
    text: str,
    bound: list[str],
    missing: list[str],
) -> str:
    lines = [
        "I'm the offline model (no LLM key is configured), so I can only look things up. "
        f'You said: "{_quote(text)}".'
    ]
    earlier = [
        _text(m.content) for m in messages[:human_index] if _is_human(m) and _text(m.content)
    ]
    if earlier:
        noun = "message" if len(earlier) == 1 else "messages"
        lines.append(
            f'Earlier in this conversation you said: "{_quote(earlier[0])}" '
            f"({len(earlier)} earlier {noun} in total)."
        )
    if missing:
        lines.append(f"The tools I would need ({', '.join(missing)}) are not available here.")
    abilities = [_CAPABILITIES[name] for name in KNOWN_TOOLS if name in bound]
    if abilities:
        lines.append(f"Try asking about {_join_words(abilities)}.")
    return "\n".join(lines)


def _final_answer(after: Sequence[BaseMessage], tool_messages: Sequence[ToolMessage]) -> str:
    calls: dict[str, ToolCall] = {}
    for message in after:
        if isinstance(message, AIMessage):
            calls.update({c["id"]: c for c in message.tool_calls if c["id"] is not None})
    lines = ["Here is what I found:"]
    for message in tool_messages:
        call = calls.get(message.tool_call_id)
        name = message.name or (call["name"] if call else "tool")
        args = call["args"] if call else {}
        lines += _summarise(name, args, _text(message.content), message.status == "error")
    return "\n".join(lines)


# -- tool result summaries -------------------------------------------------------------


def _summarise(name: str, args: Mapping[str, Any], content: str, failed: bool) -> list[str]:
    if (error := read_tool_error(content)) is not None:
        return [_error_line(name, args, error)]
    try:
        data = json.loads(content)
    except (TypeError, ValueError):
        data = None
    if not isinstance(data, dict):
        if failed:
            return [f"- {name} failed: {_excerpt(content)}"]
        if data is None:
            return [f'- {name} returned: "{_excerpt(content)}"']
        return [f"- {name} returned: {_excerpt(json.dumps(data, sort_keys=True))}"]

    if isinstance(data.get("user"), dict):
        return [f"- User {_user_line(data['user'])}."]
    if isinstance(data.get("item"), dict):
        return [f"- Item {_item_line(data['item'])}"]
    if isinstance(data.get("items"), list):
        owner = f"user {data['user_id']}" if args.get("user_id") and data.get("user_id") else "you"
        return _list_lines(
            data["items"], data.get("count"), "item", f"found for {owner}", _item_line
        )
    if isinstance(data.get("users"), list):
        return _list_lines(
            data["users"], data.get("count"), "user", "in the system", _user_short_line
        )
    if "status_code" in data:
        return [_http_line(args, data)]
    return [f"- {name} returned: {_excerpt(json.dumps(data, sort_keys=True))}"]


def _error_line(name: str, args: Mapping[str, Any], tool_error: ToolError) -> str:
    code = tool_error.code
    error = _excerpt(tool_error.message)
    if name == "lookup_user_by_email" and args.get("email"):
        subject = f"user with email {args['email']}"
    elif name == "lookup_item_by_id" and args.get("item_id"):
        subject = f"item with id {args['item_id']}"
    elif name == "http_get" and args.get("url"):
        subject = str(args["url"])
    else:
        subject = name
    if code == "not_found":
        return f"- Not found: {subject} ({error})."
    return f"- Error from {name} for {subject} ({code}): {error}"


def _user_line(user: Mapping[str, Any]) -> str:
    flags = ["active" if user.get("is_active") else "inactive"]
    if user.get("is_superuser"):
        flags.append("superuser")
    return (
        f"{user.get('email', '?')}: {user.get('full_name') or '(no name)'} "
        f"(id {user.get('id', '?')}, {', '.join(flags)})"
    )


def _user_short_line(user: Any) -> str:
    if not isinstance(user, Mapping):
        return _excerpt(str(user))
    name = user.get("full_name") or "(no name)"
    return f"{user.get('email', '?')} ({name})"


def _item_line(item: Any) -> str:
    if not isinstance(item, Mapping):
        return _excerpt(str(item))
    description = _excerpt(str(item.get("description") or "")) or "(no description)"
    return f'"{item.get("title", "?")}" (id {item.get("id", "?")}): {description}'


def _list_lines(
    entries: list[Any], count: Any, noun: str, where: str, render: Callable[[Any], str]
) -> list[str]:
    total = count if isinstance(count, int) and not isinstance(count, bool) else len(entries)
    label = f"{total} {noun}{'' if total == 1 else 's'} {where}"
    if not entries:
        return [f"- {label}."]
    lines = [f"- {label}:"]
    lines += [f"  - {render(entry)}" for entry in entries[:_LIST_LIMIT]]
    if len(entries) > _LIST_LIMIT:
        lines.append(f"  - ... and {len(entries) - _LIST_LIMIT} more")
    return lines


def _http_line(args: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    url = data.get("url") or args.get("url") or "the URL"
    content_type = data.get("content_type") or "unknown content type"
    body = str(data.get("body") or "")
    line = f"- GET {url} returned HTTP {data.get('status_code')} ({content_type})."
    if body.strip():
        line += f' Body excerpt: "{_excerpt(body)}"'
    if data.get("truncated"):
        line += " (the body was truncated)"
    return line


# -- small utilities -------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "".join(parts)
    return "" if content is None else str(content)


def _is_human(message: BaseMessage) -> bool:
    return message.type == "human"


def _last_human_index(messages: Sequence[BaseMessage]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if _is_human(messages[index]):
            return index
    return None


def _tool_names(tools: Sequence[Any]) -> list[str]:
    names = []
    for spec in tools:
        if isinstance(spec, Mapping):
            function = spec.get("function")
            name = function.get("name") if isinstance(function, Mapping) else spec.get("name")
        else:
            name = getattr(spec, "name", None)
        if isinstance(name, str):
            names.append(name)
    return names


def _call_json(call: Mapping[str, Any]) -> str:
    return json.dumps({"name": call.get("name"), "args": call.get("args")}, sort_keys=True)


def _call_id(seed: str, position: int, call: PlannedCall) -> str:
    raw = f"{seed}|{position}|{call.name}|{json.dumps(call.args, sort_keys=True)}"
    return "call_" + hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()[:16]


def _split_words(text: str) -> list[str]:
    """Split text into word chunks whose concatenation is exactly ``text``."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]


def _clean_url(url: str) -> str:
    return url.rstrip(_URL_TRAILING)


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(values))


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _quote(text: str) -> str:
    return _shorten(text, _QUOTE_LIMIT)


def _excerpt(text: str) -> str:
    return _shorten(text, _EXCERPT_LIMIT)


def _join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + f" or {words[-1]}"
