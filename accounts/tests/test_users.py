from http import HTTPStatus

import pytest
from django.test import override_settings

from accounts.models import User
from accounts.services import first_superuser_ensure
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_me_shows_and_updates_the_caller(user, user_client):
    body = user_client.get("/api/v1/users/me").json()
    assert body["email"] == user.email
    assert "password" not in body

    response = user_client.patch("/api/v1/users/me", {"full_name": "New Name"})
    assert response.status_code == HTTPStatus.OK
    assert response.json()["full_name"] == "New Name"
    # Privileges can't be granted through /me.
    user_client.patch("/api/v1/users/me", {"is_superuser": True})
    user.refresh_from_db()
    assert user.full_name == "New Name"
    assert not user.is_superuser


def test_me_email_change_refuses_a_taken_email(user_client):
    UserFactory(email="taken@example.com")
    response = user_client.patch("/api/v1/users/me", {"email": "TAKEN@example.com"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "email_taken"


def test_password_change(user, user_client, api_client):
    wrong = user_client.patch(
        "/api/v1/users/me/password",
        {"current_password": "nope-nope-nope", "new_password": "another-long-pass"},
    )
    assert wrong.status_code == HTTPStatus.BAD_REQUEST
    assert wrong.json()["code"] == "wrong_password"

    weak = user_client.patch(
        "/api/v1/users/me/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": "12345678"},
    )
    assert weak.status_code == HTTPStatus.BAD_REQUEST
    assert "new_password" in weak.json()["errors"]

    ok = user_client.patch(
        "/api/v1/users/me/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": "another-long-pass"},
    )
    assert ok.status_code == HTTPStatus.NO_CONTENT
    login = api_client.post(
        "/api/v1/login/access-token", {"username": user.email, "password": "another-long-pass"}
    )
    assert login.status_code == HTTPStatus.OK


@override_settings(USERS_OPEN_REGISTRATION=True)
def test_signup_when_open(api_client):
    response = api_client.post(
        "/api/v1/users/signup",
        {"email": "New@Example.com", "password": "a-good-password", "full_name": "New"},
        format="json",
    )
    assert response.status_code == HTTPStatus.CREATED
    assert response.json()["email"] == "new@example.com"
    assert not response.json()["is_superuser"]
    duplicate = api_client.post(
        "/api/v1/users/signup",
        {"email": "new@example.com", "password": "a-good-password"},
        format="json",
    )
    assert duplicate.status_code == HTTPStatus.BAD_REQUEST
    assert duplicate.json()["code"] == "email_taken"


@override_settings(USERS_OPEN_REGISTRATION=False)
def test_signup_when_closed(api_client):
    response = api_client.post(
        "/api/v1/users/signup",
        {"email": "x@example.com", "password": "a-good-password"},
        format="json",
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json() == {
        "detail": "Open user registration is not allowed on this server.",
        "code": "registration_closed",
    }
    assert not User.objects.filter(email="x@example.com").exists()
    # Closed before the body is read: an invalid one gets the same answer.
    response = api_client.post("/api/v1/users/signup", {"email": "x"}, format="json")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "registration_closed"


def test_superuser_manages_users(superuser, admin_client_api):
    created = admin_client_api.post(
        "/api/v1/users/",
        {"email": "staff@example.com", "password": "a-good-password", "full_name": "Staff"},
    )
    assert created.status_code == HTTPStatus.CREATED
    user_id = created.json()["id"]

    listed = admin_client_api.get("/api/v1/users/").json()
    assert {u["email"] for u in listed["results"]} >= {superuser.email, "staff@example.com"}

    updated = admin_client_api.patch(f"/api/v1/users/{user_id}", {"is_superuser": True})
    assert updated.json()["is_superuser"] is True
    assert User.objects.get(pk=user_id).is_staff  # can use Django admin too

    deactivated = admin_client_api.delete(f"/api/v1/users/{user_id}")
    assert deactivated.status_code == HTTPStatus.NO_CONTENT
    assert User.objects.get(pk=user_id).is_active is False

    self_delete = admin_client_api.delete(f"/api/v1/users/{superuser.id}")
    assert self_delete.status_code == HTTPStatus.BAD_REQUEST
    assert self_delete.json()["code"] == "cannot_deactivate_self"
    superuser.refresh_from_db()
    assert superuser.is_active


def test_normal_users_cannot_manage_users(user_client):
    other = UserFactory()
    response = user_client.get("/api/v1/users/")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json() == {
        "detail": "Only superusers can do this.",
        "code": "permission_denied",
    }
    assert user_client.get(f"/api/v1/users/{other.id}").status_code == HTTPStatus.FORBIDDEN
    assert (
        user_client.patch(f"/api/v1/users/{other.id}", {"is_active": False}).status_code
        == HTTPStatus.FORBIDDEN
    )
    assert (
        user_client.post(
            "/api/v1/users/", {"email": "x@example.com", "password": "a-good-password"}
        ).status_code
        == HTTPStatus.FORBIDDEN
    )


def test_first_superuser_is_created_once_and_never_overwritten(settings):
    settings.FIRST_SUPERUSER = "Root@Example.com"
    settings.FIRST_SUPERUSER_PASSWORD = "first-password"
    user = first_superuser_ensure()
    assert user is not None
    assert user.email == "root@example.com"
    assert user.is_superuser
    assert user.is_staff
    assert user.check_password("first-password")

    settings.FIRST_SUPERUSER_PASSWORD = "changed-password"
    again = first_superuser_ensure()
    assert again == user
    assert User.objects.filter(email="root@example.com").count() == 1
    again.refresh_from_db()
    assert again.check_password("first-password")


def test_migrate_created_the_configured_superuser():
    # pytest-django migrates the test database, which fires post_migrate.
    admin = User.objects.get(email="admin@example.com")
    assert admin.is_superuser
    assert admin.check_password("changethis")
