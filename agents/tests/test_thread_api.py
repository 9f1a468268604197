"""``PATCH agent/threads/{id}`` (rename) and absent ids as null in the run bodies."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import UserFactory
from agents.models import AgentRun, AgentThread
from agents.tests.factories import AgentRunFactory, AgentThreadFactory

THREADS = "/api/v1/agent/threads"

pytestmark = pytest.mark.django_db


def test_an_owner_renames_a_thread(user: User, user_client: APIClient) -> None:
    thread = AgentThreadFactory(owner=user, title="Old")
    before = AgentThread.objects.get(pk=thread.pk).updated_at
    for path in (f"{THREADS}/{thread.pk}", f"{THREADS}/{thread.pk}/"):
        response = user_client.patch(path, {"title": "  New title  "}, format="json")
        assert response.status_code == HTTPStatus.OK, response.content
        assert response.json()["title"] == "New title"
        assert response.json()["id"] == str(thread.pk)
    thread.refresh_from_db()
    assert thread.title == "New title"
    assert thread.updated_at == before  # renaming is no activity: the list order stays


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 42}, "title"),
        ({"title": None}, "title"),
        ({}, "title"),
    ],
)
def test_a_bad_title_is_a_400(
    user: User, user_client: APIClient, body: dict[str, object], field: str
) -> None:
    thread = AgentThreadFactory(owner=user, title="Kept")
    response = user_client.patch(f"{THREADS}/{thread.pk}", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]
    thread.refresh_from_db()
    assert thread.title == "Kept"


def test_a_title_of_200_characters_is_fine(user: User, user_client: APIClient) -> None:
    thread = AgentThreadFactory(owner=user)
    response = user_client.patch(f"{THREADS}/{thread.pk}", {"title": "t" * 200}, format="json")
    assert response.status_code == HTTPStatus.OK


def test_nobody_renames_another_users_thread(
    client_for: Callable[[User], APIClient], superuser: User
) -> None:
    thread = AgentThreadFactory(title="Private")
    for caller in (UserFactory(), superuser):
        response = client_for(caller).patch(f"{THREADS}/{thread.pk}", {"title": "Mine"})
        assert response.status_code == HTTPStatus.NOT_FOUND
    response = client_for(thread.owner).patch(f"{THREADS}/{uuid.uuid4()}", {"title": "Mine"})
    assert response.status_code == HTTPStatus.NOT_FOUND
    thread.refresh_from_db()
    assert thread.title == "Private"


def test_put_is_not_offered(user: User, user_client: APIClient) -> None:
    thread = AgentThreadFactory(owner=user)
    response = user_client.put(f"{THREADS}/{thread.pk}", {"title": "x"}, format="json")
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_an_untraced_run_has_a_null_trace_id_in_every_body(
    user: User, user_client: APIClient
) -> None:
    run: AgentRun = AgentRunFactory(user=user, trace_id="")
    listed = user_client.get("/api/v1/agent/runs").json()["results"][0]
    detail = user_client.get(f"/api/v1/agent/runs/{run.pk}").json()
    for body in (listed, detail):
        assert body["trace_id"] is None
        assert body["trace_url"] is None


def test_a_traced_run_keeps_its_trace_id(user: User, user_client: APIClient) -> None:
    run: AgentRun = AgentRunFactory(user=user, trace_id="ab" * 16)
    detail = user_client.get(f"/api/v1/agent/runs/{run.pk}").json()
    assert detail["trace_id"] == "ab" * 16
