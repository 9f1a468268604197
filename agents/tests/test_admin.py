"""The Django admin for agent runs and threads: read-only records, safe rendering."""

from __future__ import annotations

import datetime as dt
import json
import re
from http import HTTPStatus
from urllib.parse import urljoin

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import UserFactory
from agents.models import AgentRun, AgentThread
from agents.tests.factories import AgentRunFactory, AgentThreadFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:agents_agentrun_changelist"
XSS = "<script>alert(1)</script>"
ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"


def changelist(client: Client, **params: str) -> str:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == HTTPStatus.OK
    return response.content.decode()


def run_change_url(run: AgentRun) -> str:
    return reverse("admin:agents_agentrun_change", args=[run.pk])


def listed(html: str, *runs: AgentRun) -> list[bool]:
    return [run.input in html for run in runs]


# -- the list -------------------------------------------------------------------------------


def test_changelist_renders_runs(staff_client: Client) -> None:
    runs = [AgentRunFactory(input=f"distinct question {n}") for n in range(3)]
    AgentRunFactory(failed=True, input="a failing question")

    html = changelist(staff_client)

    assert listed(html, *runs) == [True, True, True]
    assert "a failing question" in html
    assert "gpt-4o-mini" in html
    assert runs[0].user.email in html


def test_changelist_truncates_long_input(staff_client: Client) -> None:
    AgentRunFactory(input="x" * 59 + "TAIL" + "y" * 100)

    html = changelist(staff_client)

    assert "x" * 59 + "…" in html
    assert "TAIL" not in html


def test_changelist_filters_by_status(staff_client: Client) -> None:
    ok = AgentRunFactory(input="the successful one")
    failed = AgentRunFactory(failed=True, input="the failed one")
    running = AgentRunFactory(status=AgentRun.Status.RUNNING, input="the running one")

    assert listed(changelist(staff_client, status="error"), ok, failed, running) == [
        False,
        True,
        False,
    ]
    assert listed(changelist(staff_client, status="success"), ok, failed, running) == [
        True,
        False,
        False,
    ]


def test_changelist_filters_by_model_and_provider(staff_client: Client) -> None:
    gpt = AgentRunFactory(input="asked gpt", provider="openai", model="gpt-4o-mini")
    claude = AgentRunFactory(input="asked claude", provider="anthropic", model="claude-sonnet-4")

    assert listed(changelist(staff_client, model="claude-sonnet-4"), gpt, claude) == [False, True]
    assert listed(changelist(staff_client, provider="openai"), gpt, claude) == [True, False]


def test_changelist_filters_by_date(staff_client: Client) -> None:
    old = AgentRunFactory(input="asked last year")
    new = AgentRunFactory(input="asked today")
    long_ago = timezone.now() - dt.timedelta(days=400)
    AgentRun.objects.filter(pk=old.pk).update(created_at=long_ago)

    # The same aware bounds the filter's own "Today" link uses.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    since_today = changelist(
        staff_client,
        created_at__gte=str(today),
        created_at__lt=str(today + dt.timedelta(days=1)),
    )
    assert listed(since_today, old, new) == [False, True]

    by_year = changelist(staff_client, created_at__year=str(timezone.localtime(long_ago).year))
    assert listed(by_year, old, new) == [True, False]


@pytest.mark.parametrize(
    ("field", "term"),
    [
        ("input", "zebra-crossing"),
        ("response", "quokka"),
        ("email", "findme@example.org"),
    ],
)
def test_changelist_search(staff_client: Client, field: str, term: str) -> None:
    wanted_user = UserFactory(email="findme@example.org") if field == "email" else UserFactory()
    wanted: AgentRun = AgentRunFactory(
        user=wanted_user,
        input="how do I cross a zebra-crossing?" if field == "input" else "plain question",
        response="a quokka is a marsupial" if field == "response" else "plain answer",
    )
    other: AgentRun = AgentRunFactory(input="something unrelated", response="nothing")

    html = changelist(staff_client, q=term)

    assert wanted.input in html
    assert other.input not in html


def test_changelist_search_by_run_and_thread_id(staff_client: Client) -> None:
    wanted = AgentRunFactory(input="found by id")
    other = AgentRunFactory(input="not this one")

    assert listed(changelist(staff_client, q=str(wanted.pk)), wanted, other) == [True, False]
    assert listed(changelist(staff_client, q=str(wanted.thread_id)), wanted, other) == [True, False]


def test_changelist_search_with_free_text_does_not_break_id_search(staff_client: Client) -> None:
    # "=id" and "=thread__id" are UUID lookups: a term that is not a UUID must not crash.
    AgentRunFactory(input="just words here")

    assert "just words here" in changelist(staff_client, q="words")


def test_changelist_escapes_model_output(staff_client: Client) -> None:
    AgentRunFactory(input=f"say {XSS}", response=XSS)

    html = changelist(staff_client)

    assert XSS not in html
    assert f"say {ESCAPED_XSS}" in html


# -- one run --------------------------------------------------------------------------------


def test_change_page_shows_the_whole_run(staff_client: Client) -> None:
    run = AgentRunFactory(
        failed=True,
        input="Who owns item 42?",
        plan="1. Call lookup_item_by_id.\n2. Tell the owner.",
        response="Partial answer before the failure.",
        error="tool_error: the database went away",
        metadata={"client": "pytest", "ip": "203.0.113.9"},
        tool_calls=[
            {
                "name": "lookup_user_by_email",
                "args": {"email": "a@b.c"},
                "ok": True,
                "output": '{"user": {"email": "a@b.c"}}',
                "duration_ms": 3.2,
            },
            {
                "name": "lookup_item_by_id",
                "args": {"item_id": "42"},
                "ok": False,
                "output": '{"error": "invalid arguments", "code": "invalid_arguments"}',
                "duration_ms": 0.4,
            },
            {"name": "list_users", "args": {}, "ok": None, "output": "", "duration_ms": None},
        ],
    )

    response = staff_client.get(run_change_url(run))

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "Who owns item 42?" in html
    assert "1. Call lookup_item_by_id.\n2. Tell the owner." in html
    assert "Partial answer before the failure." in html
    assert "tool_error: the database went away" in html
    assert "203.0.113.9" in html
    # The tool call table: one row per call, in order, with outcome and duration.
    assert "<th>Tool</th><th>Arguments</th><th>Outcome</th><th>Duration</th>" in html
    rows = re.findall(r"<tr><td>(.*?)</td><td><code>(.*?)</code></td><td>(.*?)</td>", html)
    assert rows == [
        ("lookup_user_by_email", "{&quot;email&quot;: &quot;a@b.c&quot;}", "ok"),
        ("lookup_item_by_id", "{&quot;item_id&quot;: &quot;42&quot;}", "error"),
        ("list_users", "{}", "not run"),
    ]
    assert "3.2 ms" in html
    assert "0.4 ms" in html
    # A JSON output is indented.
    assert "{\n  &quot;user&quot;: {\n    &quot;email&quot;: &quot;a@b.c&quot;\n  }\n}" in html
    assert "gpt-4o-mini" in html


def test_change_page_without_tool_calls(staff_client: Client) -> None:
    run = AgentRunFactory(tool_calls=[], plan="", error="")

    response = staff_client.get(run_change_url(run))

    assert response.status_code == HTTPStatus.OK
    assert "<th>Tool</th>" not in response.content.decode()


@pytest.mark.parametrize("field", ["input", "plan", "response", "error", "tool_calls", "metadata"])
def test_change_page_escapes_model_output(staff_client: Client, field: str) -> None:
    values: dict[str, object] = {
        "input": XSS,
        "plan": XSS,
        "response": XSS,
        "error": XSS,
        "tool_calls": [
            {"name": XSS, "args": {"q": XSS}, "ok": True, "output": XSS, "duration_ms": 1.0}
        ],
        "metadata": {"note": XSS},
    }
    run = AgentRunFactory(**{field: values[field]})

    response = staff_client.get(run_change_url(run))

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert XSS not in html
    assert "alert(1)</script>" not in html
    assert ESCAPED_XSS in html or "&lt;script&gt;alert(1)&lt;\\/script&gt;" in html


# -- read-only ------------------------------------------------------------------------------


def test_runs_cannot_be_added(staff_client: Client, superuser: User) -> None:
    thread = AgentThreadFactory(owner=superuser)
    add_url = reverse("admin:agents_agentrun_add")

    assert staff_client.get(add_url).status_code == HTTPStatus.FORBIDDEN
    response = staff_client.post(
        add_url, {"user": superuser.pk, "thread": thread.pk, "input": "forged", "status": "success"}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not AgentRun.objects.filter(input="forged").exists()
    assert add_url not in changelist(staff_client)


def test_run_change_page_is_view_only(staff_client: Client) -> None:
    run = AgentRunFactory(input="original input", status=AgentRun.Status.ERROR)

    html = staff_client.get(run_change_url(run)).content.decode()
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    assert 'name="input"' not in html

    response = staff_client.post(
        run_change_url(run),
        {"input": "tampered", "response": "tampered", "status": "success", "_save": "Save"},
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    run.refresh_from_db()
    assert run.input == "original input"
    assert run.status == AgentRun.Status.ERROR


def test_runs_can_be_viewed_but_the_list_has_no_bulk_edit(staff_client: Client) -> None:
    AgentRunFactory()

    html = changelist(staff_client)

    assert 'name="_save"' not in html  # no list_editable form


# -- threads --------------------------------------------------------------------------------


def test_thread_change_page_shows_its_runs_inline(staff_client: Client) -> None:
    thread: AgentThread = AgentThreadFactory(title="A thread about lamps")
    first: AgentRun = AgentRunFactory(user=thread.owner, thread=thread, input="first question")
    second: AgentRun = AgentRunFactory(user=thread.owner, thread=thread, input="second question")
    elsewhere: AgentRun = AgentRunFactory(input="question in another thread")

    response = staff_client.get(reverse("admin:agents_agentthread_change", args=[thread.pk]))

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "A thread about lamps" in html
    assert first.input in html
    assert second.input in html
    assert elsewhere.input not in html
    assert html.index(first.input) < html.index(second.input)  # oldest first
    # Inline runs link to their read-only page and cannot be added or deleted from here.
    assert run_change_url(first) in html
    assert 'name="runs-0-input"' not in html
    assert "runs-0-DELETE" not in html
    assert 'name="runs-MAX_NUM_FORMS" value="0"' in html


def test_thread_inline_escapes_model_output(staff_client: Client) -> None:
    run = AgentRunFactory(response=XSS)

    response = staff_client.get(reverse("admin:agents_agentthread_change", args=[run.thread_id]))

    html = response.content.decode()
    assert XSS not in html
    assert ESCAPED_XSS in html


def test_threads_cannot_be_added(staff_client: Client) -> None:
    response = staff_client.get(reverse("admin:agents_agentthread_add"))

    assert response.status_code == HTTPStatus.FORBIDDEN


def test_thread_list_renders(staff_client: Client) -> None:
    AgentThreadFactory(title="listed thread")

    response = staff_client.get(reverse("admin:agents_agentthread_changelist"))

    assert response.status_code == HTTPStatus.OK
    assert "listed thread" in response.content.decode()


@pytest.mark.parametrize("page", ["changelist", "change"])
def test_thread_link_points_to_the_thread(staff_client: Client, page: str) -> None:
    run = AgentRunFactory()
    url = reverse(CHANGELIST) if page == "changelist" else run_change_url(run)
    html = staff_client.get(url).content.decode()
    (href,) = re.findall(rf'href="([^"]*{run.thread_id}/change/)"', html)

    assert urljoin(url, href) == reverse("admin:agents_agentthread_change", args=[run.thread_id])


# -- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name",
    [CHANGELIST, "admin:agents_agentthread_changelist"],
)
def test_non_staff_user_is_redirected_to_login(client: Client, user: User, url_name: str) -> None:
    AgentRunFactory(user=user)
    client.force_login(user)
    url = reverse(url_name)

    response = client.get(url)

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("admin:login"))
    assert "next=" in response["Location"]


def test_anonymous_user_is_redirected_to_login(client: Client) -> None:
    run = AgentRunFactory()

    response = client.get(run_change_url(run))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_permissions_cannot_see_runs(client: Client) -> None:
    staff = UserFactory(is_staff=True)
    run = AgentRunFactory()
    client.force_login(staff)

    assert client.get(reverse(CHANGELIST)).status_code == HTTPStatus.FORBIDDEN
    assert client.get(run_change_url(run)).status_code == HTTPStatus.FORBIDDEN


def test_factories_build_consistent_rows() -> None:
    run: AgentRun = AgentRunFactory()

    assert run.thread.owner == run.user
    assert isinstance(run.thread, AgentThread)
    assert run.tool_calls[0]["args"] == {"email": run.user.email}
    assert json.loads(run.tool_calls[0]["output"])["user"]["email"] == run.user.email


# -- run control ----------------------------------------------------------------------------


def test_changelist_filters_pending_runs(staff_client: Client) -> None:
    pending = AgentRunFactory(status=AgentRun.Status.PENDING, input="the pending one")
    done = AgentRunFactory(input="the finished one")

    html = changelist(staff_client, status="pending")

    assert "?status__exact=pending" in changelist(staff_client)  # offered as a filter
    assert listed(html, pending, done) == [True, False]


def test_cancel_selected_runs_ends_pending_and_asks_running_ones_to_stop(
    staff_client: Client,
) -> None:
    pending = AgentRunFactory(status=AgentRun.Status.PENDING, input="queued")
    running = AgentRunFactory(status=AgentRun.Status.RUNNING, input="executing")
    done = AgentRunFactory(input="finished")

    response = staff_client.post(
        reverse(CHANGELIST),
        {
            "action": "cancel_selected_runs",
            "_selected_action": [r.pk for r in (pending, running, done)],
        },
        follow=True,
    )

    assert response.status_code == HTTPStatus.OK
    assert "Cancelled 2 run(s)" in response.content.decode()
    assert "1 had already ended" in response.content.decode()
    pending.refresh_from_db()
    running.refresh_from_db()
    done.refresh_from_db()
    assert pending.status == "error"
    assert pending.error.startswith("cancelled:")
    assert running.status == "running"
    assert running.cancel_requested == "cancel"
    assert done.status == "success"
    assert done.cancel_requested == ""


def test_interrupted_runs_are_listed_with_their_pending_calls(staff_client: Client) -> None:
    waiting = AgentRunFactory(
        status=AgentRun.Status.INTERRUPTED,
        input="post it",
        interrupt={"tool_calls": [{"id": "c1", "name": "http_post", "args": {"url": XSS}}]},
    )
    done = AgentRunFactory(input="a finished one")

    html = changelist(staff_client, status__exact="interrupted")

    assert listed(html, waiting, done) == [True, False]
    assert "http_post" in html
    page = staff_client.get(run_change_url(waiting)).content.decode()
    assert "Calls waiting for approval" in page
    assert "http_post" in page
    assert XSS not in page
