"""The chat page in a real Chromium, against the app under uvicorn and a streaming test LLM."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, AgentThread
from testing.browser import log_in, needs_chromium
from testing.faults import DroppingProxy
from testing.live import BASE_DIR, fake_llm_env, run_server, wait_for
from testing.llm_server import FakeLLMServer, Reply

ARTIFACTS = BASE_DIR / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

ANSWER = (
    "Here is a careful answer that arrives word by word. "
    "It even mentions <script>window.__pwned = true</script> as plain text."
)
DONE = ".msg.assistant:not(.streaming) .meta:not(:empty)"


@pytest.fixture(scope="module")
def llm(module_llm_server: FakeLLMServer) -> FakeLLMServer:
    return module_llm_server


@pytest.fixture(scope="module")
def server_url(django_db_setup: None, llm: FakeLLMServer) -> Iterator[str]:
    env = fake_llm_env(llm.base_url)
    with run_server(env) as url:
        yield url


@pytest.fixture
def page(browser, server_url, llm):
    llm.reset()
    context = browser.new_context(base_url=server_url, timezone_id="UTC")
    page = context.new_page()
    yield page
    context.close()


def send(page, text: str) -> None:
    page.fill("#message", text)
    page.keyboard.press("Enter")


def test_chat_streams_remembers_and_switches_threads(page, llm):
    user = UserFactory()
    llm.enqueue(
        Reply.text("1. Answer the greeting."),
        Reply.text(ANSWER, chunk_delay=0.12),
    )
    log_in(page, user)
    assert page.evaluate("() => document.activeElement.id") == "message"  # focused on load
    send(page, "Hello agent")

    answer = page.locator(".msg.assistant .body").last
    # Part of the answer is on screen while the message is still streaming.
    page.wait_for_function(
        """() => {
            const m = [...document.querySelectorAll('.msg.assistant')].pop();
            return m && m.classList.contains('streaming')
                && m.querySelector('.body').textContent.length > 0;
        }""",
        timeout=15000,
    )
    partial = answer.text_content() or ""
    assert 0 < len(partial) < len(ANSWER)
    page.wait_for_selector(DONE, timeout=30000)
    assert answer.text_content() == ANSWER
    # The answer's <script> is text, never markup: nothing ran.
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator(".msg.assistant script").count() == 0
    assert page.locator("details.plan").first.get_attribute("open") is None  # collapsed

    thread = AgentThread.objects.get(owner=user)
    page.wait_for_url(f"**/chat/{thread.id}/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

    # Reload: the history comes back from the run records, escaped.
    page.reload()
    bodies = page.locator(".msg .body").all_text_contents()
    assert bodies == ["Hello agent", ANSWER]
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator("#threads li.active a").text_content().strip() == "Hello agent"

    # A second conversation, then back to the first.
    page.click("#new-chat")
    llm.enqueue(Reply.text("1. Answer."), Reply.text("Second thread answer."))
    send(page, "Another topic")
    page.wait_for_selector(DONE, timeout=30000)
    assert page.locator("#threads li").count() == 2
    assert page.locator("#threads li a").first.text_content().strip() == "Another topic"
    page.click("#threads li >> text=Hello agent")
    page.wait_for_url(f"**/chat/{thread.id}/")
    assert page.locator(".msg .body").all_text_contents() == ["Hello agent", ANSWER]


MARKDOWN_ANSWER = """## Result

Some **bold** text and a list:

- first item
- second item

```python
print("hi")
```

| Name | Count |
| --- | --- |
| apples | 3 |

See [the docs](https://docs.example.com/page) or ![a chart](https://images.example.com/chart.png).

<img src="https://images.example.com/x.png" onerror="window.__pwned = 1">
Inline <b onclick="window.__pwned = 2">bold?</b> and <script>window.__pwned = 3</script> and
[bad](javascript:window.__pwned=4)."""


def test_markdown_is_rendered_while_streaming_and_model_html_stays_inert(page, llm):
    user = UserFactory()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    # Any request to another host (an image, a script) is recorded and refused.
    elsewhere: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "about:", "data:")):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.route("**/*", guard)
    llm.enqueue(Reply.text("1. Answer."), Reply.text(MARKDOWN_ANSWER, chunk_delay=0.05))
    log_in(page, user)
    send(page, "Format something")

    # While the answer still streams, its first Markdown is already elements.
    page.wait_for_selector(".msg.assistant.streaming .body h2", timeout=15000)
    assert page.locator(".msg.assistant.streaming").count() == 1
    page.wait_for_selector(DONE, timeout=30000)

    body = page.locator(".msg.assistant .body").last
    assert body.locator("h2").text_content() == "Result"
    assert body.locator("strong").first.text_content() == "bold"
    assert body.locator("ul > li").all_text_contents() == ["first item", "second item"]
    assert body.locator("pre code").text_content() == 'print("hi")\n'
    assert body.locator("table th").all_text_contents() == ["Name", "Count"]
    assert body.locator("table td").all_text_contents() == ["apples", "3"]
    link = body.locator("a", has_text="the docs")
    assert link.get_attribute("href") == "https://docs.example.com/page"
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("rel") == "noopener noreferrer"
    # An image is a link to it, never loaded.
    assert body.locator("img").count() == 0
    chart = body.locator("a", has_text="a chart")
    assert chart.get_attribute("href") == "https://images.example.com/chart.png"
    # The model's HTML is shown as text, and none of it runs.
    text = body.text_content() or ""
    assert '<img src="https://images.example.com/x.png" onerror="window.__pwned = 1">' in text
    assert "<script>window.__pwned = 3</script>" in text
    assert body.locator("b, script, [onclick], [onerror]").count() == 0
    bad = body.locator("a", has_text="bad")
    assert bad.count() == 0 or bad.get_attribute("href") is None
    assert page.evaluate("() => window.__pwned === undefined")
    assert elsewhere == []

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-markdown.png"), full_page=True)

    # The code block's copy button copies the code.
    body.locator("button.copy").click()
    page.wait_for_function("() => document.querySelector('button.copy').textContent === 'Copied'")
    assert page.evaluate("() => navigator.clipboard.readText()") == 'print("hi")\n'

    # The same after a reload, from the run record.
    page.reload()
    body = page.locator(".msg.assistant .body").last
    assert body.locator("h2").text_content() == "Result"
    assert body.locator("table td").all_text_contents() == ["apples", "3"]
    assert body.locator("img, b, script, [onerror]").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")
    assert elsewhere == []


def test_a_reload_shows_the_plan_tool_calls_and_meta_line(page, llm):
    user = UserFactory()
    llm.enqueue(
        Reply.text("1. Look the user up.\n2. Answer."),
        Reply.tool_calls([("lookup_user_by_email", {"email": user.email})]),
        Reply.text("That user is **active**.", prompt_tokens=30, completion_tokens=12),
    )
    log_in(page, user)
    send(page, f"Who is {user.email}?")
    page.wait_for_selector(DONE, timeout=30000)
    live = {
        "plan": page.locator(".msg.assistant .plan-body").text_content(),
        "tools": page.locator(".msg.assistant details.tools li").all_text_contents(),
        "summary": page.locator(".msg.assistant details.tools summary").text_content(),
        "body": page.locator(".msg.assistant .body").inner_html(),
        "meta": page.locator(".msg.assistant .meta").text_content(),
    }
    assert live["plan"] == "1. Look the user up.\n2. Answer."
    assert live["summary"] == "Tool calls (1)"
    # Arguments as JSON, with the tool's outcome and result summary.
    assert live["tools"][0].startswith(f'lookup_user_by_email {{"email":"{user.email}"}} → ok: ')
    assert re.fullmatch(r"gpt-test · \d+\.\d s · \d+ tokens", live["meta"] or ""), live["meta"]

    page.reload()
    reloaded = {
        "plan": page.locator(".msg.assistant .plan-body").text_content(),
        "tools": page.locator(".msg.assistant details.tools li").all_text_contents(),
        "summary": page.locator(".msg.assistant details.tools summary").text_content(),
        "body": page.locator(".msg.assistant .body").inner_html(),
        "meta": page.locator(".msg.assistant .meta").text_content(),
    }
    assert reloaded == live
    assert page.locator(".msg.assistant details.plan").is_hidden() is False


def test_stop_ends_the_answer_and_the_run_is_recorded_as_cancelled(page, llm):
    user = UserFactory()
    slow = " ".join(f"word{i}" for i in range(200))
    llm.enqueue(Reply.text("1. Answer."), Reply.text(slow, chunk_delay=0.2))
    log_in(page, user)
    # Leaving the stream no longer stops the run (the page streams with on_disconnect=continue):
    # Stop cancels it.
    posts: list[Any] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    send(page, "Say a lot")
    page.wait_for_function(
        "() => document.querySelector('.msg.assistant.streaming .body')?.textContent.length > 0",
        timeout=15000,
    )
    assert page.locator("#stop").is_visible()
    assert page.locator("#send").is_hidden()
    page.click("#stop")
    page.wait_for_selector(".msg.assistant.stopped .stopped-note", timeout=10000)
    assert page.locator(".msg.assistant.streaming").count() == 0
    assert page.locator("#send").is_visible()
    assert page.locator("#stop").is_hidden()

    run = wait_for(
        lambda: AgentRun.objects.filter(user=user).exclude(status=AgentRun.Status.RUNNING).first()
    )
    assert run is not None
    assert run.status == AgentRun.Status.ERROR
    assert run.error.startswith("cancelled")
    assert [p.url.split("/api/v1/")[1] for p in posts] == [
        "agent/run/stream",
        f"agent/runs/{run.id}/cancel",
    ]
    assert posts[0].post_data_json["on_disconnect"] == "continue"

    # Esc stops too.
    llm.enqueue(Reply.text("1. Answer."), Reply.text(slow, chunk_delay=0.2))
    send(page, "Say a lot again")
    page.wait_for_function(
        "() => document.querySelector('.msg.assistant.streaming .body')?.textContent.length > 0",
        timeout=15000,
    )
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => document.querySelectorAll('.msg.assistant.stopped').length === 2", timeout=10000
    )
    assert wait_for(
        lambda: AgentRun.objects.filter(user=user, status=AgentRun.Status.ERROR).count() == 2
    )
    # A reload says the answers were stopped.
    page.reload()
    assert page.locator(".msg.assistant.stopped .stopped-note").count() == 2

    # An answer joined after a reload stops as well.
    llm.enqueue(Reply.text("1. Answer."), Reply.text(slow, chunk_delay=0.2))
    send(page, "And again")
    page.wait_for_function(
        "() => document.querySelector('.msg.assistant.streaming .body')?.textContent.length > 0",
        timeout=15000,
    )
    page.reload()
    page.wait_for_function(
        "() => document.querySelector('.msg.assistant.streaming .body')?.textContent.length > 0",
        timeout=15000,
    )
    page.click("#stop")
    page.wait_for_function(
        "() => document.querySelectorAll('.msg.assistant.stopped').length === 3", timeout=10000
    )
    assert page.locator(".msg.assistant.streaming").count() == 0
    assert page.locator("#send").is_visible()
    last = wait_for(
        lambda: (
            AgentRun.objects.filter(user=user, input="And again")
            .exclude(status__in=AgentRun.ACTIVE)
            .first()
        )
    )
    assert last.status == AgentRun.Status.ERROR
    assert last.error.startswith("cancelled")
    assert page.locator(".msg.assistant.failed").count() == 0


def test_errors_are_shown_inline_and_can_be_retried(page, llm):
    user = UserFactory()
    llm.enqueue(Reply.error(500))
    log_in(page, user)
    send(page, "This will fail")
    error = page.locator(".msg.assistant .error")
    error.wait_for(state="visible", timeout=15000)
    text = error.text_content() or ""
    # The provider, the model and the kind of failure, never the key.
    assert "OpenAI model gpt-test at 127.0.0.1:" in text, text
    assert "HTTP 500" in text, text
    assert "test-key" not in text

    llm.enqueue(Reply.text("1. Answer."), Reply.text("It worked this time."))
    page.click(".msg.assistant .error button.retry")
    page.wait_for_selector(DONE, timeout=30000)
    # The failure stays where it was (its run is recorded), the retry is a new turn.
    assert page.locator(".msg.assistant.failed button.retry").count() == 0
    assert page.locator(".msg .body").all_text_contents() == [
        "This will fail",
        "",
        "This will fail",
        "It worked this time.",
    ]
    live_errors = page.locator(".msg.assistant.failed .error").all_text_contents()

    # After a reload everything is there again, the failure with the same explanation, and its
    # Retry works too.
    page.reload()
    assert page.locator(".msg .body").all_text_contents() == [
        "This will fail",
        "",
        "This will fail",
        "It worked this time.",
    ]
    failed = page.locator(".msg.assistant.failed .error")
    assert [t.removesuffix("Retry") for t in failed.all_text_contents()] == live_errors
    llm.enqueue(Reply.text("1. Answer."), Reply.text("Fine now."))
    failed.locator("button.retry").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.msg .body')].pop().textContent === 'Fine now.'",
        timeout=30000,
    )
    assert page.locator(".msg.user .body").all_text_contents() == ["This will fail"] * 3


def test_conversations_are_grouped_by_date_renamed_and_deleted(page, llm):
    user = UserFactory()
    now = timezone.now()
    ages = {"Fresh one": 0, "From yesterday": 1, "Last week": 4, "Ancient": 30}
    threads = {}
    for title, days in ages.items():
        thread = AgentThread.objects.create(owner=user, title=title)
        # updated_at is auto_now: set it with an update, as time passing would.
        AgentThread.objects.filter(pk=thread.pk).update(updated_at=now - timedelta(days=days))
        threads[title] = thread
    log_in(page, user)

    groups = page.evaluate(
        """() => [...document.querySelectorAll('#threads section')].map(s => [
            s.querySelector('h2').textContent,
            [...s.querySelectorAll('li a')].map(a => a.textContent),
        ])"""
    )
    assert groups == [
        ["Today", ["Fresh one"]],
        ["Yesterday", ["From yesterday"]],
        ["Previous 7 days", ["Last week"]],
        ["Older", ["Ancient"]],
    ]

    # Rename: an empty title is refused, a real one saved.
    item = page.locator(f'#threads li[data-thread-id="{threads["From yesterday"].id}"]')
    item.hover()
    item.locator("button.rename").click()
    field = item.locator("input.rename-input")
    field.fill("   ")
    field.press("Enter")
    page.wait_for_selector("input.rename-input.invalid")
    field.fill("Renamed chat")
    field.press("Enter")
    page.wait_for_function(
        "(id) => document.querySelector(`#threads li[data-thread-id='${id}'] a`).textContent"
        " === 'Renamed chat'",
        arg=str(threads["From yesterday"].id),
    )
    assert wait_for(
        lambda: AgentThread.objects.get(pk=threads["From yesterday"].id).title == "Renamed chat"
    )

    # Delete asks first: dismissed, nothing happens; accepted, the conversation is gone.
    victim = page.locator(f'#threads li[data-thread-id="{threads["Ancient"].id}"]')
    page.once("dialog", lambda dialog: dialog.dismiss())
    victim.hover()
    victim.locator("button.delete").click()
    page.wait_for_timeout(300)
    assert victim.count() == 1
    assert AgentThread.objects.filter(pk=threads["Ancient"].id).exists()
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    victim.hover()
    victim.locator("button.delete").click()
    victim.wait_for(state="detached")
    assert "Ancient" in messages[0]
    assert wait_for(lambda: not AgentThread.objects.filter(pk=threads["Ancient"].id).exists())
    assert page.locator("#threads h2").all_text_contents() == [
        "Today",
        "Yesterday",
        "Previous 7 days",
    ]
    page.reload()
    assert "Renamed chat" in page.locator("#threads").text_content()
    assert "Ancient" not in page.locator("#threads").text_content()


def test_rate_limits_are_explained_inline(browser, llm):
    user = UserFactory()
    # A cache prefix of its own: nothing else in the suite shares this limit's window.
    env = fake_llm_env(
        llm.base_url, RATE_LIMIT_PER_MINUTE="1", CACHE_KEY_PREFIX=f"chat-limit-{user.id}"
    )
    llm.reset()
    llm.enqueue(Reply.text("1. Answer."), Reply.text("First answer."))
    with run_server(env) as url:
        context = browser.new_context(base_url=url)
        page = context.new_page()
        log_in(page, user)
        send(page, "one")
        page.wait_for_selector(DONE, timeout=15000)
        # Fixed one-minute windows: if "one" was the last request of a window, "two" opens the
        # next one and passes; "three" then meets the limit.
        error = page.locator(".msg.assistant.failed .error")
        for text in ("two", "three"):
            llm.enqueue(Reply.text("1. Answer."), Reply.text(f"Answer to {text}."))
            send(page, text)
            page.wait_for_function(
                """() => {
                    const m = [...document.querySelectorAll('.msg.assistant')].pop();
                    return m.classList.contains('failed') || m.querySelector('.meta').textContent;
                }""",
                timeout=15000,
            )
            if error.count():
                break
        message = error.last.text_content() or ""
        assert re.search(r"sending messages too fast\. Try again in \d+ seconds\.", message), (
            message
        )
        context.close()


SLOW_ANSWER = " ".join(f"piece{i}" for i in range(40))
STREAMING_TEXT = """() => {
    const m = document.querySelector('.msg.assistant.streaming');
    return m ? m.querySelector('.body').textContent : null;
}"""


def stream_requests(page) -> list[Any]:
    """The page's requests that read a run's stream (the POST that starts it, and joins)."""
    seen: list[Any] = []
    page.on("request", lambda r: seen.append(r) if "/stream" in r.url else None)
    return seen


def wait_for_partial(page, answer: str, *, longer_than: int = 0) -> str:
    """Wait until the streaming answer shows more than ``longer_than`` characters; its text,
    which must be the start of ``answer`` (nothing lost, nothing shown twice)."""
    handle = page.wait_for_function(
        f"(n) => {{ const t = ({STREAMING_TEXT})(); return t && t.length > n ? t : null; }}",
        arg=longer_than,
        timeout=15000,
    )
    text = handle.json_value()
    assert answer.startswith(text.strip()), text
    return text


def test_a_reload_during_an_answer_joins_its_stream_and_shows_it_once(page, llm, server_url):
    user = UserFactory()
    llm.enqueue(Reply.text("1. Answer slowly."), Reply.text(SLOW_ANSWER, chunk_delay=0.15))
    log_in(page, user)
    requests = stream_requests(page)
    send(page, "Tell me slowly")
    before = wait_for_partial(page, SLOW_ANSWER)
    assert requests[0].method == "POST"
    assert requests[0].post_data_json["on_disconnect"] == "continue"
    run = AgentRun.objects.get(user=user)
    page.wait_for_url(f"**/chat/{run.thread_id}/")

    # The reload's page shows the run as in progress; its answer goes on arriving, from the
    # start, into the one bubble.
    response = page.reload()
    assert "data-run-active" in response.text()
    after = wait_for_partial(page, SLOW_ANSWER, longer_than=len(before))
    assert len(after) < len(SLOW_ANSWER)
    joins = [r for r in requests if r.method == "GET"]
    assert [r.url for r in joins] == [f"{server_url}/api/v1/agent/runs/{run.id}/stream"]
    assert "last-event-id" not in joins[0].headers  # a fresh page joins from the first event
    page.wait_for_selector(DONE, timeout=30000)

    run.refresh_from_db()
    assert run.status == AgentRun.Status.SUCCESS
    assert run.response == SLOW_ANSWER
    assert page.locator(".msg .body").all_text_contents() == ["Tell me slowly", SLOW_ANSWER]
    assert page.locator(".msg.assistant .plan-body").text_content() == "1. Answer slowly."
    assert page.locator(".msg.assistant .error").is_hidden()
    assert page.locator("#send").is_visible()
    # And once more after the next reload, from the run record.
    page.reload()
    assert page.locator(".msg .body").all_text_contents() == ["Tell me slowly", SLOW_ANSWER]


def test_a_dropped_connection_resumes_after_the_last_event(browser, server_url, llm):
    user = UserFactory()
    llm.reset()
    llm.enqueue(Reply.text("1. Answer slowly."), Reply.text(SLOW_ANSWER, chunk_delay=0.15))
    with DroppingProxy(server_url) as proxy:
        context = browser.new_context(base_url=proxy.url)
        page = context.new_page()
        log_in(page, user)
        requests = stream_requests(page)
        send(page, "Tell me slowly")
        before = wait_for_partial(page, SLOW_ANSWER)

        assert proxy.drop() >= 1  # the answer's stream is cut mid-answer
        after = wait_for_partial(page, SLOW_ANSWER, longer_than=len(before))
        assert len(after) < len(SLOW_ANSWER)
        page.wait_for_selector(DONE, timeout=30000)

        run = AgentRun.objects.get(user=user)
        assert run.status == AgentRun.Status.SUCCESS
        assert page.locator(".msg .body").all_text_contents() == ["Tell me slowly", SLOW_ANSWER]
        assert page.locator(".msg.assistant .error").is_hidden()
        assert page.locator(".msg.assistant .plan-body").text_content() == "1. Answer slowly."
        # The page joined the run's stream after the last event it had read.
        joins = [r for r in requests if r.method == "GET"]
        assert [r.url for r in joins] == [f"{proxy.url}/api/v1/agent/runs/{run.id}/stream"]
        assert int(joins[0].headers["last-event-id"]) > 1
        context.close()
