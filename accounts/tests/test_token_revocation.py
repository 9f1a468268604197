"""A new password, a password reset by a superuser, a password set in the admin and a
deactivation revoke every token the user holds: refresh tokens (blacklisted), access tokens
(refused on the next request) and session logins."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts import services
from accounts.models import User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

LOGIN = "/api/v1/login/access-token"
REFRESH = "/api/v1/auth/token/refresh/"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a-brand-new-passphrase-42"

pytestmark = pytest.mark.django_db(transaction=True)  # revocation runs on commit


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def login(user: User, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    response = APIClient().post(LOGIN, {"username": user.email, "password": password})
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()


def session_for(user: User) -> Client:
    client = Client()
    assert client.login(username=user.email, password=DEFAULT_PASSWORD)
    assert client.get(ME).status_code == HTTPStatus.OK
    return client


def change_own_password(user: User) -> None:
    tokens = login(user)
    response = bearer(tokens["access_token"]).patch(
        f"{ME}/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        format="json",
    )
    assert response.status_code == HTTPStatus.NO_CONTENT, response.content


def superuser_resets_password(user: User) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    response = bearer(login(admin)["access_token"]).patch(
        f"/api/v1/users/{user.pk}", {"password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == HTTPStatus.OK, response.content


def admin_form_sets_password(user: User) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(admin)
    response = client.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == HTTPStatus.FOUND, response.content[:2000]


def superuser_deactivates(user: User) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    response = bearer(login(admin)["access_token"]).delete(f"/api/v1/users/{user.pk}")
    assert response.status_code == HTTPStatus.NO_CONTENT, response.content


CHANGES: dict[str, Callable[[User], None]] = {
    "own-password-change": change_own_password,
    "superuser-password-reset": superuser_resets_password,
    "admin-password-form": admin_form_sets_password,
    "deactivation": superuser_deactivates,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_credential_change_revokes_every_token(change: Callable[[User], None]) -> None:
    user = UserFactory()
    sessions = [login(user), login(user)]
    browser = session_for(user)
    for tokens in sessions:
        assert bearer(tokens["access_token"]).get(ME).status_code == HTTPStatus.OK

    change(user)

    for tokens in sessions:
        assert bearer(tokens["access_token"]).get(ME).status_code == HTTPStatus.UNAUTHORIZED
        refreshed = APIClient().post(REFRESH, {"refresh": tokens["refresh_token"]}, format="json")
        assert refreshed.status_code == HTTPStatus.UNAUTHORIZED, refreshed.content
    assert browser.get(ME).status_code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN)
    assert not OutstandingToken.objects.filter(
        user=user, blacklistedtoken__isnull=True, token__in=[t["refresh_token"] for t in sessions]
    ).exists()


def test_the_new_password_logs_in_and_its_tokens_work() -> None:
    user = UserFactory()
    change_own_password(user)
    tokens = login(user, NEW_PASSWORD)
    assert bearer(tokens["access_token"]).get(ME).status_code == HTTPStatus.OK
    refreshed = APIClient().post(REFRESH, {"refresh": tokens["refresh_token"]}, format="json")
    assert refreshed.status_code == HTTPStatus.OK, refreshed.content


def test_a_profile_change_or_a_login_revokes_nothing() -> None:
    user = UserFactory()
    tokens = login(user)
    services.user_update(user=user, data={"full_name": "Renamed"})
    login(user)  # saves last_login
    assert bearer(tokens["access_token"]).get(ME).status_code == HTTPStatus.OK
    refreshed = APIClient().post(REFRESH, {"refresh": tokens["refresh_token"]}, format="json")
    assert refreshed.status_code == HTTPStatus.OK


def test_refresh_for_a_deleted_user_is_a_401_not_a_500() -> None:
    user = UserFactory()
    tokens = login(user)
    user.delete()
    refreshed = APIClient().post(REFRESH, {"refresh": tokens["refresh_token"]}, format="json")
    assert refreshed.status_code == HTTPStatus.UNAUTHORIZED
