import re
from http import HTTPStatus

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from agents.models import AgentThread

pytestmark = pytest.mark.django_db


def test_chat_requires_a_session_login(client):
    response = client.get("/chat/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_logs_in_and_lands_on_the_chat(client):
    user = UserFactory(email="chatter@example.com")
    page = client.get("/accounts/login/")
    assert page.status_code == HTTPStatus.OK
    response = client.post(
        "/accounts/login/", {"username": user.email, "password": DEFAULT_PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/chat/"
    assert b"New chat" in response.content
    wrong = client.post("/accounts/login/", {"username": user.email, "password": "nope"})
    assert b"didn't match" in wrong.content


def test_sidebar_lists_own_threads_newest_first_and_escapes_titles(client):
    user = UserFactory()
    client.force_login(user)
    AgentThread.objects.create(owner=user, title="older")
    AgentThread.objects.create(owner=user, title="<b>newer</b>")
    AgentThread.objects.create(owner=UserFactory(), title="someone else's")
    html = client.get("/chat/").content.decode()
    assert html.index("&lt;b&gt;newer&lt;/b&gt;") < html.index("older")
    assert "someone else" not in html
    assert "<b>newer</b>" not in html


def test_another_users_thread_is_404(client):
    client.force_login(UserFactory())
    theirs = AgentThread.objects.create(owner=UserFactory(), title="private")
    assert client.get(f"/chat/{theirs.id}/").status_code == HTTPStatus.NOT_FOUND


def test_chat_can_be_switched_off(client, settings):
    client.force_login(UserFactory())
    assert b'id="nav-chat"' in client.get("/").content
    settings.AGENT_CHAT_ENABLED = False
    assert client.get("/chat/").status_code == HTTPStatus.NOT_FOUND
    assert b'id="nav-chat"' not in client.get("/").content


def test_logout_is_a_post(client):
    client.force_login(UserFactory())
    response = client.post("/accounts/logout/")
    assert response.status_code == HTTPStatus.FOUND
    assert client.get("/chat/").status_code == HTTPStatus.FOUND


def test_the_api_refuses_session_posts_without_csrf(client):
    from django.test import Client

    user = UserFactory()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    response = strict.post(
        "/api/v1/agent/run/stream", {"message": "hi"}, content_type="application/json"
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "permission_denied"


def test_the_offline_model_says_which_model_answers_and_how_to_connect_one(client, settings):
    client.force_login(UserFactory())
    settings.LLM_MODEL_PROVIDER = "offline"
    settings.LLM_MODEL_NAME = "offline"
    html = client.get("/chat/").content.decode()
    assert 'id="offline-notice"' in html
    assert "offline demo model <code>offline</code>" in html
    for setting in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "AZURE_OPENAI_"):
        assert setting in html
    settings.LLM_MODEL_PROVIDER = "openai"
    settings.LLM_MODEL_NAME = "gpt-4o-mini"
    assert 'id="offline-notice"' not in client.get("/chat/").content.decode()


def test_a_reload_renders_every_turn_from_its_run(client):
    from agents.models import AgentRun

    user = UserFactory()
    client.force_login(user)
    thread = AgentThread.objects.create(owner=user, title="Lookups")
    common = {"user": user, "thread": thread}
    AgentRun.objects.create(
        **common,
        input="Who is <b>bob</b>?",
        response="Bob is **active** <script>x()</script>",
        plan="1. Look him up.",
        status=AgentRun.Status.SUCCESS,
        model="gpt-test",
        latency_ms=1234,
        total_tokens=42,
        tool_calls=[
            {
                "name": "lookup_user_by_email",
                "args": {"email": "bob@example.com"},
                "ok": True,
                "output": '{"user": {}}',
                "summary": "found bob",
                "duration_ms": 2.0,
            },
            {
                "name": "list_users",
                "args": {},
                "ok": False,
                "output": "boom boom",
                "duration_ms": 1,
            },
        ],
    )
    AgentRun.objects.create(
        **common,
        input="And now?",
        status=AgentRun.Status.ERROR,
        error="llm_unavailable: The language model failed to answer: OpenAI model m timed out.",
    )
    AgentRun.objects.create(
        **common, input="Stop me", status=AgentRun.Status.ERROR, error="cancelled: the client left"
    )
    AgentRun.objects.create(
        **common, input="Crash", status=AgentRun.Status.ERROR, error="agent_error: KeyError('x')"
    )
    html = client.get(f"/chat/{thread.id}/").content.decode()
    # In order, escaped, with the plan, the tool calls as JSON and the meta line.
    assert html.index("Who is &lt;b&gt;bob&lt;/b&gt;?") < html.index("And now?")
    assert html.index("And now?") < html.index("Stop me") < html.index("Crash")
    assert "Bob is **active** &lt;script&gt;x()&lt;/script&gt;" in html
    assert '<pre class="plan-body">1. Look him up.</pre>' in html
    assert "Tool calls (2)" in html
    assert (
        '<code>lookup_user_by_email</code> <span class="args">{&quot;email&quot;:'
        "&quot;bob@example.com&quot;}</span>"
        '<span class="outcome ok"> → ok: found bob</span>'
    ) in html
    assert '<span class="outcome failed"> → failed: boom boom</span>' in html
    assert "gpt-test · 1.2 s · 42 tokens" in html
    # A failure says what happened, without its machine code; a stop says so; a crash stays
    # in the logs.
    assert ">The language model failed to answer: OpenAI model m timed out.</div>" in html
    assert "llm_unavailable:" not in html
    assert "Stopped." in html
    assert "KeyError" not in html
    assert ">The agent failed to answer.</div>" in html


def test_a_run_in_progress_is_marked_for_the_page_to_join(client):
    from agents.models import AgentRun

    user = UserFactory()
    client.force_login(user)
    thread = AgentThread.objects.create(owner=user, title="Busy")
    done = AgentRun.objects.create(
        user=user, thread=thread, input="First", response="Done.", status=AgentRun.Status.SUCCESS
    )
    running = AgentRun.objects.create(
        user=user, thread=thread, input="Second", status=AgentRun.Status.RUNNING
    )
    html = client.get(f"/chat/{thread.id}/").content.decode()
    assert f'<div class="msg assistant" data-run-id="{done.id}">' in html
    assert (
        f'<div class="msg assistant streaming" data-run-id="{running.id}" data-run-active>' in html
    )
    assert html.count("data-run-active") == 1
    assert 'data-runs-url="/api/v1/agent/runs"' in html


def test_an_interrupted_run_carries_its_approval_card_and_its_continuation_follows(client):
    import json
    from html import unescape

    from agents.models import AgentRun

    user = UserFactory()
    client.force_login(user)
    thread = AgentThread.objects.create(owner=user, title="Orders")
    call = {"id": "call_1", "name": "http_post", "args": {"url": "http://x/<script>"}}
    common = {"user": user, "thread": thread, "input": "Order it"}
    waiting = AgentRun.objects.create(
        **common,
        status=AgentRun.Status.INTERRUPTED,
        plan="1. Post.",
        interrupt={"tool_calls": [call]},
        tool_calls=[{**call, "ok": None, "output": None}],
    )
    html = client.get(f"/chat/{thread.id}/").content.decode()
    # The card's data is an escaped attribute, never markup; the call says it waits.
    assert "<script>" not in html
    attribute = re.search(r'data-approval="([^"]*)"', html)
    assert attribute is not None
    assert json.loads(unescape(attribute.group(1))) == {
        "run_id": str(waiting.id),
        "tool_calls": [call],
        "decision": "",
        "args": None,
        "tool_call_id": None,
        "comment": "",
    }
    assert '<span class="outcome paused-for-approval"> → paused for approval</span>' in html

    # Decided: the card says how (with the continuation's arguments), and the continuation is
    # a turn of its own, without the question or the plan again.
    AgentRun.objects.filter(pk=waiting.pk).update(decision=AgentRun.Decision.EDIT)
    resumed = AgentRun.objects.create(
        **common,
        status=AgentRun.Status.SUCCESS,
        response="Posted.",
        plan="1. Post.",
        resumed_from=waiting,
        resume={"decision": "edit", "args": {"url": "http://y/"}, "tool_call_id": "call_1"},
        tool_calls=[{**call, "args": {"url": "http://y/"}, "ok": True, "summary": "sent"}],
    )
    html = client.get(f"/chat/{thread.id}/").content.decode()
    card = json.loads(unescape(re.search(r'data-approval="([^"]*)"', html).group(1)))
    assert card["decision"] == "edit"
    assert card["args"] == {"url": "http://y/"}
    assert html.count('<div class="msg user">') == 1
    assert f'<div class="msg assistant continuation" data-run-id="{resumed.id}">' in html
    assert html.count("1. Post.") == 1
    assert html.index(str(waiting.id)) < html.index(str(resumed.id))


def test_an_approval_past_its_time_is_shown_expired(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from agents.models import AgentRun

    user = UserFactory()
    client.force_login(user)
    thread = AgentThread.objects.create(owner=user, title="Late")
    call = {"id": "call_1", "name": "http_post", "args": {"url": "http://x/"}}
    run = AgentRun.objects.create(
        user=user,
        thread=thread,
        input="Order it",
        status=AgentRun.Status.INTERRUPTED,
        interrupt={"tool_calls": [call]},
        tool_calls=[{**call, "ok": None}],
        finished_at=timezone.now() - timedelta(hours=settings.AGENT_APPROVAL_TTL_HOURS + 1),
    )
    html = client.get(f"/chat/{thread.id}/").content.decode()
    run.refresh_from_db()
    assert run.decision == AgentRun.Decision.EXPIRED
    assert "&quot;decision&quot;: &quot;expired&quot;" in html
