"""LOGIN_RATE_LIMIT on every login form and endpoint, per client IP and per account; the client
IP of core.http (X-Forwarded-For only from FORWARDED_ALLOW_IPS, malformed values ignored)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client, RequestFactory
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from core.http import UNKNOWN_CLIENT, client_ip
from core.tests.test_throttles import fresh_ip

pytestmark = pytest.mark.django_db

RATE = "3/m"


@pytest.fixture(autouse=True)
def own_counters(settings: SettingsWrapper) -> Iterator[None]:
    prefix = f"rl-login-{uuid.uuid4().hex[:12]}:"
    settings.RATELIMIT_CACHE_PREFIX = prefix
    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMIT_FAIL_OPEN = True
    settings.LOGIN_RATE_LIMIT = RATE
    yield
    cache = caches["default"]
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern(f"{prefix}*")


def api_login(email: str, password: str, ip: str) -> Any:
    return Client().post(
        "/api/v1/login/access-token", {"username": email, "password": password}, REMOTE_ADDR=ip
    )


def api_token(email: str, password: str, ip: str) -> Any:
    return Client().post(
        "/api/v1/auth/token/",
        {"email": email, "password": password},
        content_type="application/json",
        REMOTE_ADDR=ip,
    )


def form_login(path: str) -> Callable[[str, str, str], Any]:
    def post(email: str, password: str, ip: str) -> Any:
        client = Client(enforce_csrf_checks=True)
        client.get(path, REMOTE_ADDR=ip)
        token = client.cookies["csrftoken"].value
        return client.post(
            path,
            {"username": email, "password": password, "csrfmiddlewaretoken": token},
            REMOTE_ADDR=ip,
        )

    return post


LOGINS = {
    "login/access-token": api_login,
    "auth/token": api_token,
    "accounts/login": form_login("/accounts/login/"),
    "admin/login": form_login("/admin/login/"),
}


def assert_refused(response: Any, *, html: bool) -> None:
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS, response.content[:500]
    assert 0 < int(response["Retry-After"]) <= 60
    if html:
        assert response["Content-Type"].startswith("text/html")
        assert b"Too many requests" in response.content
    else:
        assert response.json()["code"] == "rate_limited"


@pytest.mark.parametrize("login", LOGINS.values(), ids=LOGINS.keys())
def test_every_login_is_limited_per_ip(login):
    html = login in (LOGINS["accounts/login"], LOGINS["admin/login"])
    ip = fresh_ip(RATE)
    for _ in range(3):
        response = login(f"{uuid.uuid4().hex}@example.com", "wrong-password", ip)
        assert response.status_code < HTTPStatus.TOO_MANY_REQUESTS
    assert_refused(login(f"{uuid.uuid4().hex}@example.com", "wrong-password", ip), html=html)
    # Another IP is not affected.
    other = login(f"{uuid.uuid4().hex}@example.com", "wrong-password", fresh_ip(RATE))
    assert other.status_code < HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.parametrize("login", LOGINS.values(), ids=LOGINS.keys())
def test_every_login_is_limited_per_account_across_ips(login):
    html = login in (LOGINS["accounts/login"], LOGINS["admin/login"])
    user = UserFactory(is_staff=True, is_superuser=True)
    for _ in range(3):
        response = login(user.email, "wrong-password", fresh_ip(RATE))
        assert response.status_code < HTTPStatus.TOO_MANY_REQUESTS
    # The right password from a fresh IP, in any case of the email: refused, not even checked.
    assert_refused(login(user.email.upper(), DEFAULT_PASSWORD, fresh_ip(RATE)), html=html)
    # Another account from the same kind of fresh IP still logs in.
    other = UserFactory(is_staff=True, is_superuser=True)
    response = login(other.email, DEFAULT_PASSWORD, fresh_ip(RATE))
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND), response.content[:300]


def test_all_logins_share_the_counts():
    ip = fresh_ip(RATE)
    for login in (api_login, api_token, form_login("/accounts/login/")):
        assert login(f"{uuid.uuid4().hex}@x.org", "wrong", ip).status_code < 429
    assert_refused(form_login("/admin/login/")(f"{uuid.uuid4().hex}@x.org", "wrong", ip), html=True)


# --------------------------------------------------------------------------------------------
# client_ip


def ip_of(remote: str, forwarded: str | None = None) -> str:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


def test_forwarded_for_is_followed_only_from_a_trusted_proxy(settings):
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.0/8", "127.0.0.1"]
    assert ip_of("203.0.113.9") == "203.0.113.9"
    assert ip_of("203.0.113.9", "198.51.100.1") == "203.0.113.9"  # spoofed: not a proxy
    assert ip_of("127.0.0.1", "198.51.100.1") == "198.51.100.1"
    # From the right, past trusted proxies, to the first untrusted address.
    assert ip_of("127.0.0.1", "1.1.1.1, 198.51.100.1, 10.1.2.3") == "198.51.100.1"
    assert ip_of("127.0.0.1", "10.1.2.3, 10.0.0.1") == "10.1.2.3"
    assert ip_of("::ffff:127.0.0.1", "198.51.100.1") == "198.51.100.1"
    assert ip_of("127.0.0.1", "[2001:db8::1]:443") == "2001:db8::1"
    assert ip_of("127.0.0.1", "198.51.100.1:8080") == "198.51.100.1"


@pytest.mark.parametrize(
    "forwarded",
    ["garbage", "1.2.3.4.5", "", " , ,", "\u00e9", "198.51.100.1, nonsense", "x" * 5000],
)
def test_a_malformed_forwarded_for_is_ignored(settings, forwarded):
    settings.FORWARDED_ALLOW_IPS = ["127.0.0.1"]
    assert ip_of("127.0.0.1", forwarded) == "127.0.0.1"


def test_trust_everyone_and_an_unusable_peer(settings):
    settings.FORWARDED_ALLOW_IPS = ["*"]
    assert ip_of("203.0.113.9", "198.51.100.1") == "198.51.100.1"
    assert ip_of("not-an-ip") == UNKNOWN_CLIENT


@pytest.mark.parametrize("remote", ["garbage", "", "1.2.3.4.5"])
def test_a_malformed_peer_address_is_no_500_on_login(remote):
    response = Client().post(
        "/api/v1/login/access-token", {"username": "a@b.c", "password": "x"}, REMOTE_ADDR=remote
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    form = Client().post(
        "/accounts/login/", {"username": "a@b.c", "password": "x"}, REMOTE_ADDR=remote
    )
    assert form.status_code == HTTPStatus.OK
