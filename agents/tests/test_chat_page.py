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
