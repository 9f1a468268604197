"""Page widths in a real Chromium: phones (375 and 320 px) and the admin at 1280 px.

Whatever the data, no page is wider than the window: a 16,000-character message, a wide table
or a long code line scrolls inside its own box or wraps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from agents.models import AgentRun, AgentThread
from testing.browser import horizontal_overflow, log_in, needs_chromium
from testing.live import BASE_DIR, database_env, run_server

ARTIFACTS = BASE_DIR / "test-artifacts"
PHONE = {"width": 375, "height": 740}
LONG_WORD = "x" * 16_000
LONG_TEXT = ("a long sentence of words " * 700)[:16_000]
WIDE_ANSWER = (
    "A table:\n\n| "
    + " | ".join(f"column{i}" for i in range(30))
    + " |\n|"
    + "---|" * 30
    + "\n| "
    + " | ".join(str(i) for i in range(30))
    + " |\n\n```\n"
    + "code " * 200
    + "\n```\n\n"
    + "y" * 3000
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture(scope="module")
def server_url(django_db_setup: None) -> Iterator[str]:
    with run_server(database_env()) as url:  # the offline model: no LLM is called here
        yield url


def new_page(browser: Any, server_url: str, viewport: dict[str, int]) -> Any:
    context = browser.new_context(base_url=server_url, viewport=viewport, timezone_id="UTC")
    return context.new_page()


def long_thread(owner: Any) -> AgentThread:
    thread = AgentThread.objects.create(owner=owner, title="t" * 200)
    for text in (LONG_WORD, LONG_TEXT):
        AgentRun.objects.create(
            user=owner,
            thread=thread,
            input=text,
            response=text,
            plan=text,
            status=AgentRun.Status.SUCCESS,
            model="m" * 128,
            tool_calls=[
                {
                    "name": "lookup_user_by_email",
                    "args": {"email": text},
                    "ok": True,
                    "output": text,
                    "duration_ms": 1.0,
                    "summary": text[:200],
                }
            ],
            metadata={"note": text},
            latency_ms=1200,
            total_tokens=42,
        )
    AgentRun.objects.create(
        user=owner, thread=thread, input="Show me a wide table", response=WIDE_ANSWER,
        status=AgentRun.Status.SUCCESS, model="gpt-test", latency_ms=10,
    )  # fmt: skip
    return thread


@pytest.mark.parametrize("width", [375, 320])
def test_the_chat_fits_a_phone_with_the_list_in_a_drawer(browser, server_url, width):
    user = UserFactory()
    thread = long_thread(user)
    page = new_page(browser, server_url, {"width": width, "height": 740})
    page.goto("/accounts/login/")
    assert horizontal_overflow(page) == 0
    log_in(page, user)
    assert horizontal_overflow(page) == 0

    page.goto(f"/chat/{thread.id}/")
    page.wait_for_selector(".markdown table")
    assert horizontal_overflow(page) == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"chat-{width}.png"))
    # Log out, the message box and the send button are on screen, the box at the bottom.
    for selector in ("button:has-text('Log out')", "#message", "#send"):
        box = page.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0, selector
        assert box["x"] + box["width"] <= width, selector
    composer = page.locator("#composer").bounding_box()
    assert abs(composer["y"] + composer["height"] - 740) <= 1

    # The conversation list is a drawer behind the menu button.
    sidebar = page.locator("#sidebar")
    assert not sidebar.is_visible()
    page.click("#menu-toggle")
    sidebar.wait_for(state="visible")
    assert page.locator("#menu-toggle").get_attribute("aria-expanded") == "true"
    assert horizontal_overflow(page) == 0
    page.wait_for_timeout(300)  # the slide-in transition
    box = sidebar.bounding_box()
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width
    page.screenshot(path=str(ARTIFACTS / f"chat-{width}-drawer.png"))
    assert page.evaluate("() => document.activeElement.id") == "new-chat"
    page.keyboard.press("Escape")
    sidebar.wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.id") == "menu-toggle"
    page.click("#menu-toggle")
    page.click("#backdrop", position={"x": width - 10, "y": 300})
    sidebar.wait_for(state="hidden")
    # Picking a conversation from the drawer opens it.
    page.click("#menu-toggle")
    page.click("#new-chat")
    page.wait_for_url("**/chat/")
    assert horizontal_overflow(page) == 0
    page.context.close()


def test_the_message_box_follows_an_on_screen_keyboard(browser, server_url):
    """A keyboard shrinks the visual viewport: the page shrinks with it, the box on top of it."""
    user = UserFactory()
    page = new_page(browser, server_url, PHONE)
    log_in(page, user)
    page.evaluate(
        """() => {
            // What a phone's keyboard does: the visual viewport becomes 400 px high.
            Object.defineProperty(window.visualViewport, 'height', {value: 400});
            window.visualViewport.dispatchEvent(new Event('resize'));
        }"""
    )
    composer = page.locator("#composer").bounding_box()
    assert abs(composer["y"] + composer["height"] - 400) <= 1
    page.context.close()


@pytest.mark.parametrize("viewport", [PHONE, {"width": 1280, "height": 900}], ids=["375", "1280"])
def test_admin_run_pages_are_no_wider_than_the_window(browser, server_url, viewport):
    admin = UserFactory(is_staff=True, is_superuser=True)
    thread = long_thread(UserFactory())
    run = thread.runs.order_by("created_at").first()
    page = new_page(browser, server_url, viewport)
    page.goto("/admin/login/")
    page.fill("#id_username", admin.email)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")

    pages = {
        "runs": reverse("admin:agents_agentrun_changelist"),
        "run": reverse("admin:agents_agentrun_change", args=[run.pk]),
        "threads": reverse("admin:agents_agentthread_changelist"),
        "thread": reverse("admin:agents_agentthread_change", args=[thread.pk]),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    for name, path in pages.items():
        page.goto(path)
        page.screenshot(path=str(ARTIFACTS / f"admin-{name}-{viewport['width']}.png"))
        assert horizontal_overflow(page) == 0, name
    # Every column of a list has room for its content: on a phone the list scrolls sideways
    # inside its own box rather than squeezing columns (Input, Thread, Model) to nothing.
    for name in ("runs", "threads"):
        page.goto(pages[name])
        hidden = page.evaluate(
            "() => [...document.querySelectorAll('#result_list thead th')]"
            ".filter(th => th.getBoundingClientRect().width < 30).map(th => th.className)"
        )
        assert hidden == [], name
    if viewport["width"] == 1280:
        # At 1280 px every column of the runs list is in view: the list itself does not scroll.
        page.goto(pages["runs"])
        results = page.locator("#changelist .results")
        assert results.evaluate("r => r.scrollWidth - r.clientWidth") <= 0
        for column in ("short_input", "thread_link", "model"):
            cell = page.locator(f"td.field-{column}").first.bounding_box()
            assert cell is not None, column
            assert cell["x"] + cell["width"] <= 1280, column
        # The run page wraps the whole message: all 16,000 characters are there.
        page.goto(pages["run"])
        assert LONG_WORD in (page.locator(".field-input_display").text_content() or "")
        # And its labels stay readable beside wide fields (the tool calls' table, say).
        for name in ("run", "thread"):
            page.goto(pages[name])
            squeezed = page.evaluate(
                "() => [...document.querySelectorAll('.form-row label')]"
                ".filter(label => label.getBoundingClientRect().width < 100)"
                ".map(label => label.textContent.trim())"
            )
            assert squeezed == [], name
    page.context.close()
