"""The configured OpenAI chat model (``agents.llm.get_chat_model``) against a real
OpenAI-compatible server: LangChain's ``ChatOpenAI`` and the ``openai`` SDK, sending exactly the
request body LangChain builds (its messages and tools skip the SDK's transformation)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI

from agents.directory import tool_templates
from agents.llm import get_chat_model
from testing.llm_server import FakeLLMServer, Reply

CONVERSATION = [
    SystemMessage("Be brief."),
    HumanMessage("Who uses this?"),
    AIMessage(content="", tool_calls=[{"name": "list_users", "args": {"limit": 2}, "id": "c1"}]),
    ToolMessage(content='{"users": [], "count": 0}', tool_call_id="c1"),
    HumanMessage("And now?"),
]


@pytest.mark.parametrize("stream", [False, True])
def test_the_model_sends_the_body_langchain_builds(llm_server: FakeLLMServer, stream: bool) -> None:
    model = get_chat_model()
    assert isinstance(model, ChatOpenAI)
    tools = tool_templates(None)
    llm_server.enqueue(Reply.tool_calls([("list_users", {"limit": 3})], prompt_tokens=40))
    bound = model.bind_tools(tools)

    message: Any
    if stream:
        chunks = list(bound.stream(CONVERSATION))
        message = chunks[0]
        for chunk in chunks[1:]:
            message += chunk
    else:
        message = bound.invoke(CONVERSATION)

    assert [c["name"] for c in message.tool_calls] == ["list_users"]
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 40
    [sent] = llm_server.requests
    stock = ChatOpenAI(model="gpt-test", api_key="k", base_url=llm_server.base_url)
    expected = stock._get_request_payload(
        CONVERSATION, tools=[convert_to_openai_tool(t) for t in tools]
    )
    assert sent["messages"] == expected["messages"]
    assert sent["tools"] == expected["tools"]
    assert sent["model"] == "gpt-test"
    assert bool(sent.get("stream")) is stream
