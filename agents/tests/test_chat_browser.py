"""The chat page in a real Chromium, against the app under uvicorn and a streaming test LLM."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from agents.models import AgentThread
from testing.live import BASE_DIR, fake_llm_env, run_server
from testing.llm_server import FakeLLMServer, Reply

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = BASE_DIR / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
        reason=f"no Chromium at {CHROMIUM} (CI installs it)",
    ),
]

ANSWER = (
    "Here is a careful answer that arrives word by word. "
    "It even mentions <script>window.__pwned = true</script> as plain text."
)


@pytest.fixture(scope="module")
def llm(module_llm_server: FakeLLMServer) -> FakeLLMServer:
    return module_llm_server


@pytest.fixture(scope="module")
def server_url(django_db_setup: None, llm: FakeLLMServer) -> Iterator[str]:
    env = fake_llm_env(llm.base_url)
    with run_server(env) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
    # here are still plain synchronous calls, as Django's docs advise for this case.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, server_url, llm):
    llm.reset()
    context = browser.new_context(base_url=server_url)
    page = context.new_page()
    yield page
    context.close()


def log_in(page, user) -> None:
    page.goto("/chat/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", user.email)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/chat/$"))


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
    page.wait_for_selector(".msg.assistant:not(.streaming) .meta:not(:empty)", timeout=30000)
    assert answer.text_content() == ANSWER
    # The answer's <script> is text, never markup: nothing ran.
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator(".msg.assistant script").count() == 0
    assert page.locator("details.plan").first.get_attribute("open") is None  # collapsed

    thread = AgentThread.objects.get(owner=user)
    page.wait_for_url(f"**/chat/{thread.id}/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

    # Reload: the history comes back from the checkpointer, escaped.
    page.reload()
    bodies = page.locator(".msg .body").all_text_contents()
    assert bodies == ["Hello agent", ANSWER]
    assert page.locator("#threads li.active").text_content().strip() == "Hello agent"

    # A second conversation, then back to the first.
    page.click("#new-chat")
    llm.enqueue(Reply.text("1. Answer."), Reply.text("Second thread answer."))
    send(page, "Another topic")
    page.wait_for_selector(".msg.assistant:not(.streaming) .meta:not(:empty)", timeout=30000)
    assert page.locator("#threads li").count() == 2
    assert page.locator("#threads li").first.text_content().strip() == "Another topic"
    page.click("#threads li >> text=Hello agent")
    page.wait_for_url(f"**/chat/{thread.id}/")
    assert page.locator(".msg .body").all_text_contents() == ["Hello agent", ANSWER]


def test_errors_are_shown_inline(page, llm):
    user = UserFactory()
    llm.enqueue(Reply.error(500))
    log_in(page, user)
    send(page, "This will fail")
    error = page.locator(".msg.assistant .error")
    error.wait_for(state="visible", timeout=15000)
    assert "language model failed" in (error.text_content() or "")


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
        page.wait_for_selector(".msg.assistant:not(.streaming) .meta:not(:empty)", timeout=15000)
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
