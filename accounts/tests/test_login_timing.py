"""No timing oracle at login: the password hasher runs exactly once for an active user, an
inactive one and an email nobody has, with a right or a wrong password."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


class CountingHasher(MD5PasswordHasher):
    """The test suite's MD5 hasher, counting how often it hashes."""

    calls: ClassVar[list[str]] = []

    def encode(self, password: str, salt: str) -> str:
        CountingHasher.calls.append(password)
        return super().encode(password, salt)


@pytest.fixture
def hashes(settings: Any) -> list[str]:
    settings.PASSWORD_HASHERS = ["accounts.tests.test_login_timing.CountingHasher"]
    UserFactory(email="active@example.com")
    UserFactory(email="inactive@example.com", is_active=False)
    CountingHasher.calls.clear()
    return CountingHasher.calls


LOGINS = {
    "login/access-token": lambda email, password: APIClient().post(
        "/api/v1/login/access-token", {"username": email, "password": password}
    ),
    "auth/token": lambda email, password: APIClient().post(
        "/api/v1/auth/token/", {"email": email, "password": password}, format="json"
    ),
    "accounts/login": lambda email, password: Client().post(
        "/accounts/login/", {"username": email, "password": password}
    ),
}


@pytest.mark.parametrize("login", LOGINS.values(), ids=LOGINS.keys())
@pytest.mark.parametrize("email", ["active@example.com", "inactive@example.com", "nobody@x.org"])
@pytest.mark.parametrize("password", [DEFAULT_PASSWORD, "wrong-password"])
def test_the_hasher_runs_once_whoever_logs_in(hashes, login, email, password):
    response = login(email, password)
    assert response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR
    assert len(hashes) == 1, (email, password, response.status_code)
