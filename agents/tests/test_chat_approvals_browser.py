"""The chat page's approval card in a real Chromium, against the app under uvicorn, the fake
OpenAI server and a canary (a local listener the HTTP tools may reach): a call to ``http_post``
pauses the answer with a card; Approve, Edit and Reject resume it (the canary receives exactly
what was decided, or nothing), the continuation streams under the card, and a reload shows the
card again, waiting or decided."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.tests.factories import UserFactory
from agents.models import AgentRun
from testing.browser import horizontal_overflow, log_in, needs_chromium
from testing.canary import Canary
from testing.live import BASE_DIR, fake_llm_env, run_server
from testing.llm_server import FakeLLMServer, Reply

ARTIFACTS = BASE_DIR / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

CARD = ".approval"
PENDING = ".approval.pending"
CONTINUED = ".msg.assistant.continuation:not(.streaming) .meta:not(:empty)"
DONE = ".msg.assistant:not(.streaming) .meta:not(:empty)"
SLOW = " ".join(f"word{i}" for i in range(40))


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def llm(module_llm_server: FakeLLMServer) -> FakeLLMServer:
    return module_llm_server


@pytest.fixture(scope="module")
def server_url(django_db_setup: None, llm: FakeLLMServer) -> Iterator[str]:
    env = fake_llm_env(
        llm.base_url,
        HTTP_TOOL_ALLOWED_NETWORKS="127.0.0.0/8",
        AGENT_APPROVAL_REQUIRED_TOOLS="http_post",
        AGENT_RUNS_BACKEND="embedded",
    )
    with run_server(env) as url:
        yield url


@pytest.fixture
def context(browser: Any, server_url: str, llm: FakeLLMServer, canary: Canary) -> Iterator[Any]:
    llm.reset()
    canary.received.clear()
    context = browser.new_context(base_url=server_url, timezone_id="UTC")
    yield context
    context.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


def send(page: Any, text: str) -> None:
    page.fill("#message", text)
    page.keyboard.press("Enter")


def hook_args(canary: Canary, body: Any) -> dict[str, Any]:
    return {"url": f"{canary.url}/hook", "json_body": body}


def pause_for_approval(
    page: Any,
    llm: FakeLLMServer,
    args: dict[str, Any],
    text: str,
    *,
    also: tuple[tuple[str, dict[str, Any]], ...] = (),
) -> Any:
    """Send ``text``; the model wants ``http_post(**args)`` (and the calls ``also``, in the same
    turn): the answer ends with a card."""
    llm.enqueue(Reply.text("1. Post."), Reply.tool_calls([("http_post", args), *also]))
    send(page, text)
    card = page.locator(PENDING)
    card.wait_for(timeout=30000)
    return card


def received_bodies(canary: Canary) -> list[Any]:
    return [(r["path"], json.loads(r["body"])) for r in canary.received]


def resume_posts(page: Any) -> list[Any]:
    seen: list[Any] = []
    page.on("request", lambda r: seen.append(r) if r.url.endswith("/resume") else None)
    return seen


def tool_lines(page: Any) -> list[list[str]]:
    """Each answer's folded tool calls, as text."""
    return [
        bubble.locator("details.tools li").all_text_contents()
        for bubble in page.locator(".msg.assistant").all()
    ]


def parsed(lines: list[list[str]]) -> list[list[tuple[str, Any, str]]]:
    """``tool_lines`` as (name, arguments, outcome): the arguments' JSON parsed."""
    result = []
    for bubble in lines:
        calls = []
        for line in bubble:
            name, rest = line.split(" ", 1)
            args, outcome = rest.rsplit(" → ", 1)
            calls.append((name, json.loads(args), outcome))
        result.append(calls)
    return result


def button(scope: Any, name: str) -> Any:
    return scope.get_by_role("button", name=name, exact=True)


def test_approve_runs_the_call_and_streams_the_continuation(page, llm, canary):
    user = UserFactory()
    log_in(page, user)
    args = hook_args(canary, {"order": 42})
    posts = resume_posts(page)
    card = pause_for_approval(page, llm, args, "Order item 42")

    # The card: the tool and its arguments, pretty-printed; nothing sent yet.
    assert card.locator(".approval-tool").all_text_contents() == ["http_post"]
    assert card.locator(".approval-args").text_content() == json.dumps(args, indent=2)
    assert [b.text_content() for b in card.locator(":scope > .approval-actions button").all()] == [
        "Approve",
        "Edit",
        "Reject",
    ]
    assert page.evaluate("() => document.activeElement.classList.contains('approval')")
    run = AgentRun.objects.get(user=user)
    assert run.status == AgentRun.Status.INTERRUPTED
    assert run.decision == ""
    assert canary.received == []
    # The answer's tool calls say the call waits; the message box says why it waits too.
    assert tool_lines(page) == [
        [f"http_post {json.dumps(args, separators=(',', ':'))} → paused for approval"]
    ]
    assert page.locator("#send").is_disabled()
    assert page.locator("#composer-hint").is_visible()
    assert "approve, edit or reject" in (page.locator("#composer-hint").text_content() or "")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-approval.png"), full_page=True)

    llm.enqueue(Reply.text("Done."))
    button(card, "Approve").click()
    page.wait_for_selector(CONTINUED, timeout=30000)

    assert received_bodies(canary) == [("/hook", {"order": 42})]
    assert page.locator(".msg .body").all_text_contents() == ["Order item 42", "", "Done."]
    decided = page.locator(CARD)
    assert decided.get_attribute("class") == "approval decided decided-approve"
    assert decided.locator(".approval-status").text_content() == "Approved."
    assert decided.locator("button, textarea").count() == 0
    live_tools = tool_lines(page)
    assert live_tools[1][0].startswith('http_post {"url":')
    assert " → ok: " in live_tools[1][0]
    # The decision went with the page's CSRF token, streamed, and outlives the page.
    assert len(posts) == 1
    assert posts[0].headers["x-csrftoken"]
    assert posts[0].post_data_json == {
        "decision": "approve",
        "stream": True,
        "on_disconnect": "continue",
    }
    run.refresh_from_db()
    assert run.decision == AgentRun.Decision.APPROVE
    resumed = AgentRun.objects.get(resumed_from=run)
    assert resumed.status == AgentRun.Status.SUCCESS
    assert resumed.response == "Done."
    assert page.locator("#send").is_enabled()
    assert page.locator("#composer-hint").is_hidden()
    page.screenshot(path=str(ARTIFACTS / "chat-approval-approved.png"), full_page=True)

    # A reload shows the decided card and the continuation as its own turn, question not
    # repeated.
    page.reload()
    assert page.locator(".msg .body").all_text_contents() == ["Order item 42", "", "Done."]
    assert page.locator(".msg.user").count() == 1
    assert page.locator(f"{CARD}.decided .approval-status").text_content() == "Approved."
    assert page.locator(PENDING).count() == 0
    assert tool_lines(page) == live_tools
    assert page.locator(".msg.assistant.continuation details.plan").is_hidden()

    # The thread takes the next message.
    llm.enqueue(Reply.text("1. Answer."), Reply.text("You're welcome."))
    send(page, "Thanks")
    page.wait_for_selector(
        ".msg.assistant:not(.streaming):last-child .meta:not(:empty)", timeout=30000
    )
    assert page.locator(".msg .body").last.text_content() == "You're welcome."
    assert len(canary.received) == 1


def test_edit_checks_the_json_shows_the_schemas_refusal_and_runs_the_edited_call(page, llm, canary):
    user = UserFactory()
    log_in(page, user)
    posts = resume_posts(page)
    card = pause_for_approval(page, llm, hook_args(canary, {"order": 1}), "Order one")

    button(card, "Edit").click()
    editor = card.locator("textarea.approval-json")
    assert editor.is_visible()
    assert page.evaluate("() => document.activeElement.classList.contains('approval-json')")
    assert json.loads(editor.input_value()) == hook_args(canary, {"order": 1})
    assert button(card, "Approve").is_hidden()

    # Not JSON, or not an object: refused here, nothing is sent.
    editor.fill('{"url": ')
    button(card, "Run with these arguments").click()
    error = card.locator(".approval-editor .approval-error")
    assert "not valid JSON" in (error.text_content() or "")
    assert editor.get_attribute("aria-invalid") == "true"
    editor.fill("[1, 2]")
    editor.press("Control+Enter")
    assert error.text_content() == "The arguments must be a JSON object, in { }."
    assert posts == []

    # JSON the tool's schema refuses: the server's reason, under the arguments.
    editor.fill('{"url": 12}')
    button(card, "Run with these arguments").click()
    page.wait_for_function(
        "() => document.querySelector('.approval-editor .approval-error').textContent",
        timeout=10000,
    )
    assert error.text_content() == "url: Input should be a valid string"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-approval-edit.png"), full_page=True)
    assert len(posts) == 1
    run = AgentRun.objects.get(user=user)
    assert run.decision == ""
    assert page.locator(PENDING).count() == 1
    assert canary.received == []

    # Esc closes the editor; Edit opens it again with the call's arguments.
    editor.press("Escape")
    assert editor.is_hidden()
    assert page.evaluate("() => document.activeElement.textContent") == "Edit"
    button(card, "Edit").click()
    assert json.loads(editor.input_value()) == hook_args(canary, {"order": 1})

    edited = hook_args(canary, {"order": 7, "note": "edited"})
    llm.enqueue(Reply.text("Ordered 7 instead."))
    editor.fill(json.dumps(edited))
    button(card, "Run with these arguments").click()
    page.wait_for_selector(CONTINUED, timeout=30000)

    assert received_bodies(canary) == [("/hook", {"order": 7, "note": "edited"})]
    decided = page.locator(CARD)
    assert decided.locator(".approval-status").text_content() == "Edited."
    assert decided.locator(".approval-edited").text_content() == json.dumps(edited, indent=2)
    assert page.locator(".msg.assistant.continuation .body").text_content() == "Ordered 7 instead."
    live_tools = tool_lines(page)
    assert live_tools[1][0].startswith(
        f"http_post {json.dumps(edited, separators=(',', ':'))} → ok"
    )
    assert run.interrupt is not None
    call_id = run.interrupt["tool_calls"][0]["id"]
    assert posts[-1].post_data_json == {
        "decision": "edit",
        "args": edited,
        "tool_call_id": call_id,
        "stream": True,
        "on_disconnect": "continue",
    }
    run.refresh_from_db()
    assert run.decision == AgentRun.Decision.EDIT
    assert AgentRun.objects.get(resumed_from=run).tool_calls[0]["args"] == edited

    # After a reload, from the records (PostgreSQL's jsonb may order the keys its own way).
    page.reload()
    decided = page.locator(CARD)
    assert decided.locator(".approval-status").text_content() == "Edited."
    assert json.loads(decided.locator(".approval-edited").text_content() or "") == edited
    assert parsed(tool_lines(page)) == parsed(live_tools)


def test_reject_with_a_comment_sends_nothing_and_the_agent_answers(page, llm, canary):
    user = UserFactory()
    log_in(page, user)
    # A call that needs no approval, in the same turn, waits with it.
    args = hook_args(canary, {"order": 3})
    also: tuple[tuple[str, dict[str, Any]], ...] = (("lookup_user_items", {}),)
    card = pause_for_approval(page, llm, args, "Order three", also=also)
    assert card.locator(".approval-tool").all_text_contents() == ["http_post"]
    assert [line.rsplit(" → ", 1)[1] for line in tool_lines(page)[0]] == [
        "paused for approval",
        "paused for approval",
    ]

    button(card, "Reject").click()
    comment = card.locator("textarea.approval-comment")
    assert page.evaluate("() => document.activeElement.classList.contains('approval-comment')")
    comment.fill("Not this week.")
    llm.enqueue(Reply.text("Understood, I did not order it."))
    button(card, "Reject the call").click()
    page.wait_for_selector(CONTINUED, timeout=30000)

    assert canary.received == []
    assert (
        page.locator(".msg.assistant.continuation .body").text_content()
        == "Understood, I did not order it."
    )
    status = page.locator(f"{CARD} .approval-status")
    assert status.text_content() == "Rejected. Your comment: “Not this week.”"
    # The model was told, with the comment.
    answers = [m for m in llm.requests[-1]["messages"] if m.get("role") == "tool"]
    assert "Not this week." in str(answers[0]["content"])
    continuation_tools = tool_lines(page)[1]
    assert continuation_tools[0].startswith("http_post ")
    assert " → failed: " in continuation_tools[0]
    assert continuation_tools[1].startswith("lookup_user_items {} → ok: ")
    run = AgentRun.objects.get(user=user, resumed_from__isnull=True)
    assert run.decision == AgentRun.Decision.REJECT

    page.reload()
    assert page.locator(f"{CARD} .approval-status").text_content() == (
        "Rejected. Your comment: “Not this week.”"
    )
    assert tool_lines(page)[1] == continuation_tools


def test_a_reloaded_page_shows_the_waiting_card_and_it_works_from_the_keyboard(page, llm, canary):
    user = UserFactory()
    log_in(page, user)
    args = hook_args(canary, {"order": 5})
    # A reload before the run pauses: the page joins its stream, which ends with the card.
    llm.enqueue(Reply.text("1. Post."), Reply.tool_calls([("http_post", args)], delay=2))
    send(page, "Order five")
    page.wait_for_selector(".msg.assistant.streaming details.plan:not([hidden])", timeout=15000)
    run = AgentRun.objects.get(user=user)
    page.wait_for_url(f"**/chat/{run.thread_id}/")
    response = page.reload()
    assert "data-run-active" in response.text()
    page.locator(PENDING).wait_for(timeout=30000)
    assert page.locator(f"{PENDING} .approval-args").text_content() == json.dumps(args, indent=2)
    assert page.locator("#send").is_disabled()

    # And once the run has paused, from its record.
    response = page.reload()
    assert "data-approval" in response.text()
    card = page.locator(PENDING)
    assert card.locator(".approval-args").text_content() == json.dumps(args, indent=2)
    assert page.locator("#send").is_disabled()
    assert page.locator("#composer-hint").is_visible()
    # The card has the focus; Tab reaches Approve, Enter presses it.
    assert page.evaluate("() => document.activeElement.classList.contains('approval')")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Approve"
    llm.enqueue(Reply.text(SLOW, chunk_delay=0.1))
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.msg.continuation.streaming .body')?.textContent.length > 0",
        timeout=15000,
    )

    # A reload while the continuation streams: the card is decided, the continuation goes on
    # (it outlives the page) and the page joins it.
    response = page.reload()
    assert "data-run-active" in response.text()
    assert page.locator(f"{CARD} .approval-status").text_content() == "Approved."
    page.wait_for_selector(CONTINUED, timeout=30000)
    assert received_bodies(canary) == [("/hook", {"order": 5})]
    assert page.locator(".msg.assistant.continuation .body").text_content() == SLOW
    run.refresh_from_db()
    assert run.decision == AgentRun.Decision.APPROVE
    resumed = AgentRun.objects.get(resumed_from=run)
    assert resumed.status == AgentRun.Status.SUCCESS
    assert resumed.response == SLOW


def test_a_decision_taken_in_another_tab_is_said_inline(context, page, llm, canary):
    user = UserFactory()
    log_in(page, user)
    llm.enqueue(Reply.text("1. Answer."), Reply.text("Hello."))
    send(page, "Hi")
    page.wait_for_selector(DONE, timeout=30000)
    thread_id = AgentRun.objects.get(user=user).thread_id
    # A second tab, open on the conversation before the run paused.
    other = context.new_page()
    other.goto(f"/chat/{thread_id}/")

    card = pause_for_approval(page, llm, hook_args(canary, {"order": 9}), "Order nine")

    # The other tab does not know: its message is refused, and says why.
    send(other, "Anything new?")
    error = other.locator(".msg.assistant.failed .error")
    error.wait_for(timeout=15000)
    assert "waiting for a decision" in (error.text_content() or "")
    other.reload()
    stale = other.locator(PENDING)
    assert stale.count() == 1

    llm.enqueue(Reply.text("Done here."))
    button(card, "Approve").click()
    page.wait_for_selector(CONTINUED, timeout=30000)

    # The other tab's card is out of date: its Approve is refused inline, and the card shows
    # the decision the run has now.
    button(stale, "Approve").click()
    other.wait_for_selector(f"{CARD}.decided", timeout=10000)
    assert "not waiting for approval" in (
        other.locator(f"{CARD} .approval-error").text_content() or ""
    )
    assert other.locator(f"{CARD} .approval-status").text_content() == (
        "Approved. Reload the page to see the answer."
    )
    assert other.locator("#send").is_enabled()
    assert received_bodies(canary) == [("/hook", {"order": 9})]


XSS = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"


def test_arguments_are_shown_as_text_and_fit_a_phone(page, llm, canary):
    user = UserFactory()
    page.set_viewport_size({"width": 375, "height": 740})
    log_in(page, user)
    args = hook_args(canary, {"note": XSS, "blob": "z" * 3000})
    card = pause_for_approval(page, llm, args, "Post a note")

    assert XSS in (card.locator(".approval-args").text_content() or "")
    assert page.locator(".msg.assistant img, .msg.assistant script").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")
    assert horizontal_overflow(page) == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-approval-phone.png"))

    # From the run record, after a reload, too; and in the editor.
    page.reload()
    card = page.locator(PENDING)
    assert XSS in (card.locator(".approval-args").text_content() or "")
    assert page.locator(".msg.assistant img, .msg.assistant script").count() == 0
    button(card, "Edit").click()
    assert json.loads(card.locator("textarea.approval-json").input_value()) == args
    assert page.evaluate("() => window.__pwned === undefined")
    assert horizontal_overflow(page) == 0
    assert canary.received == []
