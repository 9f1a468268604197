"""Fixtures shared by every app's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from accounts.tests.factories import UserFactory


@pytest.fixture(scope="session", autouse=True)
def _checkpointer_closed_before_db_teardown(django_db_setup: None) -> Iterator[None]:
    """The PostgreSQL checkpointer keeps a pool open on the test database; close it before
    pytest-django drops that database (else: "database ... is being accessed by other users")."""
    yield
    from agents.checkpointer import close_checkpointer

    close_checkpointer()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db: None) -> User:
    return UserFactory()


@pytest.fixture
def superuser(db: None) -> User:
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    """An API client that sends a bearer token for the given user."""

    def make(user: User) -> APIClient:
        client = APIClient()
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def user_client(user: User, client_for: Callable[[User], APIClient]) -> APIClient:
    return client_for(user)


@pytest.fixture
def admin_client_api(superuser: User, client_for: Callable[[User], APIClient]) -> APIClient:
    return client_for(superuser)
