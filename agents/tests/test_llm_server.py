"""Tests for the fake OpenAI-compatible server, driven by the real ``ChatOpenAI`` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpx
import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from testing.llm_server import FakeLLMServer, Reply


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return query


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def make_llm(server: FakeLLMServer, **kwargs: Any) -> ChatOpenAI:
    kwargs.setdefault("model", "gpt-test")
    kwargs.setdefault("timeout", 10)
    return ChatOpenAI(base_url=server.base_url, api_key="test", max_retries=0, **kwargs)


def collect(chunks: Iterable[Any]) -> tuple[list[AIMessageChunk], AIMessageChunk]:
    """Materialise a ``.stream()`` and add the chunks up like LangChain does."""
    seen = list(chunks)
    total = seen[0]
    for chunk in seen[1:]:
        total = total + chunk
    return seen, total


def test_plain_answer_and_usage(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("Hello there!", prompt_tokens=12, completion_tokens=3))
    msg = make_llm(server).invoke("hi")
    assert msg.content == "Hello there!"
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] == 12
    assert msg.usage_metadata["output_tokens"] == 3
    assert msg.usage_metadata["total_tokens"] == 15
    assert msg.response_metadata["model_name"] == "gpt-test"
    assert msg.response_metadata["finish_reason"] == "stop"


def test_echo_default_and_default_reply(server: FakeLLMServer) -> None:
    llm = make_llm(server)
    assert llm.invoke("ping").content == "echo: ping"
    server.default_reply = Reply.text("always this")
    assert llm.invoke("anything").content == "always this"
    assert llm.invoke("again").content == "always this"


def test_requests_are_recorded(server: FakeLLMServer) -> None:
    make_llm(server, temperature=0.3).invoke(
        [SystemMessage("be brief"), HumanMessage("what is 2+2?")]
    )
    assert len(server.requests) == 1
    body = server.requests[0]
    assert body["model"] == "gpt-test"
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is 2+2?"},
    ]
    server.reset()
    assert server.requests == []


def test_tool_calls_non_streaming(server: FakeLLMServer) -> None:
    server.enqueue(Reply.tool_calls([("add", {"a": 2, "b": 3}), ("lookup", {"query": "x y"})]))
    msg = make_llm(server).bind_tools([add, lookup]).invoke("add 2 and 3")
    assert [(c["name"], c["args"], c["id"]) for c in msg.tool_calls] == [
        ("add", {"a": 2, "b": 3}, "call_1"),
        ("lookup", {"query": "x y"}, "call_2"),
    ]
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    sent_tools = server.requests[0]["tools"]
    assert [t["function"]["name"] for t in sent_tools] == ["add", "lookup"]


def test_tool_calls_streaming(server: FakeLLMServer) -> None:
    args = {"query": "a fairly long argument that is split in fragments"}
    server.enqueue(Reply.tool_calls([("lookup", args), ("add", {"a": 1, "b": 2})], content="ok"))
    chunks, total = collect(make_llm(server).bind_tools([add, lookup]).stream("go"))
    assert len(chunks) > 5
    assert total.content == "ok"
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [
        ("lookup", args),
        ("add", {"a": 1, "b": 2}),
    ]
    assert [c["id"] for c in total.tool_calls] == ["call_1", "call_2"]
    assert total.response_metadata["finish_reason"] == "tool_calls"


def test_streaming_arrives_incrementally_with_usage(server: FakeLLMServer) -> None:
    server.enqueue(
        Reply.text(
            "one two three four five", prompt_tokens=20, completion_tokens=5, chunk_delay=0.2
        )
    )
    llm = make_llm(server, stream_usage=True)
    first_at: float | None = None
    chunks: list[AIMessageChunk] = []
    for chunk in llm.stream("count"):
        if first_at is None:
            first_at = time.monotonic()
        chunks.append(chunk)
    _, total = collect(iter(chunks))
    assert total.content == "one two three four five"
    assert len([c for c in chunks if c.content]) == 5
    assert total.usage_metadata is not None
    assert total.usage_metadata["input_tokens"] == 20
    assert total.usage_metadata["output_tokens"] == 5
    assert total.usage_metadata["total_tokens"] == 25
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    assert len(server.finished_at) == 1
    assert first_at is not None
    # Not buffered: the first chunk reached the client well before the server finished writing.
    assert server.finished_at[0] - first_at > 0.8


def test_server_error_raises_internal_server_error(server: FakeLLMServer) -> None:
    server.enqueue(Reply.error(500, "boom"))
    with pytest.raises(openai.InternalServerError) as excinfo:
        make_llm(server).invoke("hi")
    assert excinfo.value.status_code == 500
    assert excinfo.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_rate_limit_error_while_streaming(server: FakeLLMServer) -> None:
    server.enqueue(Reply.error(429, "slow down"))
    with pytest.raises(openai.RateLimitError):
        list(make_llm(server).stream("hi"))


def test_hang_triggers_client_timeout(server: FakeLLMServer) -> None:
    server.enqueue(Reply.hang(5))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        make_llm(server, timeout=0.5).invoke("hi")
    assert time.monotonic() - started < 3


def test_client_closing_stream_early_is_detected(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text(" ".join(f"w{i}" for i in range(40)), chunk_delay=0.05))
    stream = cast(Generator[AIMessageChunk, None, None], make_llm(server).stream("long please"))
    assert next(stream).content == ""  # role chunk
    assert next(stream).content == "w0 "
    stream.close()
    deadline = time.monotonic() + 2
    while not server.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.cancelled_count == 1
    assert server.cancelled[0]["messages"][-1]["content"] == "long please"
    assert server.finished_at == []
    # The server is still healthy afterwards.
    assert make_llm(server).invoke("again").content == "echo: again"


def test_concurrent_requests(server: FakeLLMServer) -> None:
    llm = make_llm(server)
    server.default_reply = None

    def ask(i: int) -> str:
        if i % 2:
            return "".join(str(c.content) for c in llm.stream(f"q{i}"))
        return str(llm.invoke(f"q{i}").content)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(16)))
    assert answers == [f"echo: q{i}" for i in range(16)]
    assert len(server.requests) == 16
    assert len(server.finished_at) == 16


def test_async_client_streams_and_cancels(server: FakeLLMServer) -> None:
    llm = make_llm(server, stream_usage=True)

    async def scenario() -> tuple[str, list[str]]:
        server.enqueue(Reply.text("a b c", chunk_delay=0.05))
        parts = [str(c.content) async for c in llm.astream("x")]
        server.enqueue(Reply.text(" ".join(["w"] * 50), chunk_delay=0.05))
        agen = cast(Any, llm.astream("y"))
        await agen.__anext__()
        await agen.__anext__()
        await agen.aclose()
        answers = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(5)))
        return "".join(parts), [str(a.content) for a in answers]

    text, answers = asyncio.run(scenario())
    assert text == "a b c"
    assert answers == [f"echo: q{i}" for i in range(5)]
    deadline = time.monotonic() + 2
    while not server.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.cancelled_count == 1


def test_models_and_unknown_paths(server: FakeLLMServer) -> None:
    make_llm(server, model="gpt-other").invoke("hi")
    models = httpx.get(f"{server.base_url}/models").json()
    ids = [m["id"] for m in models["data"]]
    assert {"gpt-test", "gpt-other"} <= set(ids)
    resp = httpx.post(f"{server.base_url}/nope", json={})
    assert resp.status_code == 404
    assert resp.json()["error"]["message"].startswith("Unknown path")
    bad = httpx.post(
        f"{server.base_url}/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400


def test_raw_openai_client_stream_format(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("a b c"))
    with httpx.stream(
        "POST",
        f"{server.base_url}/chat/completions",
        json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == "a b c"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in events[-1]


def test_stop_is_prompt_even_with_hanging_request() -> None:
    srv = FakeLLMServer().start()
    srv.enqueue(Reply.hang(30))
    client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2
    srv.stop()  # idempotent
