"""Rate limits (core.throttles): the 429 answer and its headers, windows, per-IP login limits,
the throttle classes on a view of their own, exactness across processes (a burst against two
server processes sharing one Redis), and Redis going away.

Counters live in the ``default`` cache: Redis on the services run, the in-process cache on the
embedded one. Every test counts under a key prefix of its own, and picks a user id or client
IP whose fixed window (django-ratelimit jitters window ends by key) has plenty of time left, so
that no window rolls over in the middle of an assertion.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, cast

import httpx
import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django_ratelimit.core import _get_window, _split_rate, get_usage
from prometheus_client import REGISTRY
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from agents.models import AgentRun, AgentThread
from core.throttles import AgentRateThrottle, RateLimitMixin, RateLimitThrottle
from testing.live import database_env, free_port, run_server

RUN = "/api/v1/agent/run"
STREAM = "/api/v1/agent/run/stream"
LOGIN = "/api/v1/login/access-token"
TOKEN = "/api/v1/auth/token/"

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------------------------
# Helpers


def seconds_left(value: str, rate: str) -> float:
    """Seconds until the window django-ratelimit uses for ``value`` at ``rate`` ends."""
    _, period = _split_rate(rate)
    return _get_window(value, period) + 1 - time.time()


def fresh(make: Callable[[], str], rate: str, margin: float = 30.0) -> str:
    """A key value (user id, IP) whose current window has at least ``margin`` seconds left."""
    while True:
        value = make()
        if seconds_left(value, rate) >= margin:
            return value


def fresh_user(rate: str, margin: float = 30.0) -> User:
    return UserFactory(id=uuid.UUID(fresh(lambda: str(uuid.uuid4()), rate, margin)))


def fresh_ip(rate: str, margin: float = 30.0) -> str:
    def make() -> str:
        n = uuid.uuid4().int
        return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"

    return fresh(make, rate, margin)


def metric(name: str, scope: str) -> float:
    return REGISTRY.get_sample_value(name, {"scope": scope}) or 0.0


def assert_limited(response: Any, limit: int) -> None:
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"}
    assert body["code"] == "rate_limited"
    assert body["detail"]
    assert 0 < int(response["Retry-After"]) <= 60
    assert response["X-RateLimit-Limit"] == str(limit)
    assert response["X-RateLimit-Remaining"] == "0"


@pytest.fixture(autouse=True)
def own_counters(settings: SettingsWrapper) -> Iterator[str]:
    """This test's counters under a prefix of their own; the offline model, quickly."""
    prefix = f"rl-test-{uuid.uuid4().hex[:12]}:"
    settings.RATELIMIT_CACHE_PREFIX = prefix
    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMIT_FAIL_OPEN = True
    settings.AGENT_DAILY_TOKEN_BUDGET = 0
    settings.LLM_MODEL_PROVIDER = "offline"
    settings.LLM_MODEL_NAME = "offline"
    settings.OFFLINE_MODEL_STREAM_DELAY = 0.0
    yield prefix
    cache = caches["default"]
    if hasattr(cache, "delete_pattern"):  # django-redis: remove only this test's keys
        cache.delete_pattern(f"{prefix}*")


# --------------------------------------------------------------------------------------------
# The answer: 429 JSON, Retry-After, X-RateLimit-* on every answer of a limited endpoint


def test_over_the_limit_the_agent_answers_429_with_retry_after(settings, client_for):
    settings.RATE_LIMIT_PER_MINUTE = 2
    user = fresh_user("2/m")
    client = client_for(user)
    rejected_before = metric("ratelimit_rejections_total", "agent")

    for remaining in ("1", "0"):
        response = client.post(RUN, {"message": "hello"}, format="json")
        assert response.status_code == HTTPStatus.OK, response.content
        assert response["X-RateLimit-Limit"] == "2"
        assert response["X-RateLimit-Remaining"] == remaining
        assert "Retry-After" not in response

    response = client.post(RUN, {"message": "hello"}, format="json")
    assert_limited(response, limit=2)
    # A rejected request starts no run.
    assert AgentRun.objects.filter(user=user).count() == 2
    assert metric("ratelimit_rejections_total", "agent") == rejected_before + 1


@pytest.mark.django_db(transaction=True)  # the stream's run writes from a thread of its own
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_the_stream_shares_the_agent_limit_and_reports_it(settings, client_for):
    settings.RATE_LIMIT_PER_MINUTE = 2
    client = client_for(fresh_user("2/m"))

    response = client.post(STREAM, {"message": "hello"}, format="json")
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["X-RateLimit-Limit"] == "2"
    assert response["X-RateLimit-Remaining"] == "1"
    body = b"".join(response).decode()  # the async stream, consumed synchronously
    assert "event: done" in body

    assert client.post(RUN, {"message": "hello"}, format="json").status_code == HTTPStatus.OK

    # Over the limit the stream answers JSON, as its other errors do, whatever Accept says.
    response = client.post(
        STREAM, {"message": "hello"}, format="json", HTTP_ACCEPT="text/event-stream"
    )
    assert_limited(response, limit=2)


def test_errors_of_a_limited_endpoint_carry_the_headers_and_count(settings, client_for):
    settings.RATE_LIMIT_PER_MINUTE = 3
    client = client_for(fresh_user("3/m"))

    response = client.post(RUN, {"message": ""}, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid"
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "2"

    others = AgentThread.objects.create(owner=cast(User, UserFactory()))
    response = client.post(RUN, {"message": "hi", "thread_id": str(others.id)}, format="json")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["X-RateLimit-Remaining"] == "1"


def test_limits_are_per_user(settings, client_for):
    settings.RATE_LIMIT_PER_MINUTE = 1
    first, second = client_for(fresh_user("1/m")), client_for(fresh_user("1/m"))
    assert first.post(RUN, {"message": "hi"}, format="json").status_code == HTTPStatus.OK
    assert first.post(RUN, {"message": "hi"}, format="json").status_code == 429
    assert second.post(RUN, {"message": "hi"}, format="json").status_code == HTTPStatus.OK


def test_anonymous_requests_are_refused_before_they_count(settings, api_client):
    settings.RATE_LIMIT_PER_MINUTE = 1
    for _ in range(3):
        response = api_client.post(RUN, {"message": "hi"}, format="json")
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        assert "X-RateLimit-Limit" not in response


def test_a_new_window_admits_requests_again(settings, monkeypatch, client_for):
    # A short window so that the test can wait for the next one: the rate is the limit's own
    # (RATE_LIMIT_PER_MINUTE is always per minute).
    monkeypatch.setattr(AgentRateThrottle, "get_rate", lambda self: "2/3s")
    client = client_for(UserFactory())

    # Requests until one is refused; a window ending in between restarts the count.
    statuses = []
    for _ in range(8):
        response = client.post(RUN, {"message": "hi"}, format="json")
        statuses.append(response.status_code)
        if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            break
    assert statuses[-1] == HTTPStatus.TOO_MANY_REQUESTS, statuses
    assert_limited(response, limit=2)
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 3

    if retry_after > 1:  # still refused within the window...
        assert client.post(RUN, {"message": "hi"}, format="json").status_code == 429
    # ...and admitted once Retry-After has passed, in a fresh window.
    time.sleep(retry_after)
    response = client.post(RUN, {"message": "hi"}, format="json")
    assert response.status_code == HTTPStatus.OK, response.content
    assert response["X-RateLimit-Remaining"] == "1"


def test_limits_can_be_turned_off(settings, client_for):
    settings.RATE_LIMIT_PER_MINUTE = 1
    settings.RATE_LIMIT_ENABLED = False
    client = client_for(UserFactory())
    for _ in range(3):
        response = client.post(RUN, {"message": "hi"}, format="json")
        assert response.status_code == HTTPStatus.OK
        assert "X-RateLimit-Limit" not in response


# --------------------------------------------------------------------------------------------
# Login: per client IP, both login endpoints together


def test_login_endpoints_share_a_per_ip_limit(settings, api_client):
    settings.LOGIN_RATE_LIMIT = "3/m"
    user = UserFactory()
    ip = fresh_ip("3/m")
    rejected_before = metric("ratelimit_rejections_total", "login")

    wrong = {"username": user.email, "password": "wrong-password"}
    for remaining in ("2", "1"):
        response = api_client.post(LOGIN, wrong, REMOTE_ADDR=ip)
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert response.json()["code"] == "invalid_credentials"
        assert response["X-RateLimit-Limit"] == "3"
        assert response["X-RateLimit-Remaining"] == remaining
    response = api_client.post(
        TOKEN, {"email": user.email, "password": "wrong-password"}, REMOTE_ADDR=ip
    )
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["X-RateLimit-Remaining"] == "0"

    # Even the right password is refused from this IP now, on both endpoints...
    right = {"username": user.email, "password": DEFAULT_PASSWORD}
    assert_limited(api_client.post(LOGIN, right, REMOTE_ADDR=ip), limit=3)
    assert_limited(
        api_client.post(TOKEN, {"email": user.email, "password": DEFAULT_PASSWORD}, REMOTE_ADDR=ip),
        limit=3,
    )
    assert metric("ratelimit_rejections_total", "login") == rejected_before + 2

    # ...while another IP logs in (to another account: this one has its own limit too).
    other = UserFactory()
    right = {"username": other.email, "password": DEFAULT_PASSWORD}
    response = api_client.post(LOGIN, right, REMOTE_ADDR=fresh_ip("3/m"))
    assert response.status_code == HTTPStatus.OK
    assert response.json()["access_token"]
    assert response["X-RateLimit-Remaining"] == "2"


def test_requests_no_handler_answers_are_not_counted(settings, api_client):
    settings.LOGIN_RATE_LIMIT = "2/m"
    ip = fresh_ip("2/m")
    response = api_client.get(LOGIN, REMOTE_ADDR=ip)
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert "X-RateLimit-Limit" not in response
    assert api_client.options(LOGIN, REMOTE_ADDR=ip).status_code == HTTPStatus.OK

    wrong = {"username": "nobody@example.com", "password": "wrong-password"}
    for remaining in ("1", "0"):
        response = api_client.post(LOGIN, wrong, REMOTE_ADDR=ip)
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert response["X-RateLimit-Remaining"] == remaining
    assert_limited(api_client.post(LOGIN, wrong, REMOTE_ADDR=ip), limit=2)


# --------------------------------------------------------------------------------------------
# The throttle classes on a view of their own


class WideThrottle(RateLimitThrottle):
    scope = "test-wide"
    key = "ip"

    def get_rate(self) -> str:
        return "5/m"


class NarrowThrottle(RateLimitThrottle):
    scope = "test-narrow"
    key = "ip"

    def get_rate(self) -> str:
        return "2/m"


class TwoLimitsView(RateLimitMixin, APIView):
    authentication_classes: list[type] = []
    permission_classes = (AllowAny,)
    throttle_classes = (WideThrottle, NarrowThrottle)

    def post(self, request: Request) -> Response:
        return Response({"ok": True})


class WithoutMixinView(APIView):
    authentication_classes: list[type] = []
    permission_classes = (AllowAny,)
    throttle_classes = (NarrowThrottle,)


def count(throttle: type[RateLimitThrottle], ip: str) -> int:
    """The throttle's current count for ``ip``, read without counting."""
    request = APIRequestFactory().get("/", REMOTE_ADDR=ip)
    usage = get_usage(request, group=throttle.scope, key="ip", rate=throttle().get_rate())
    assert usage is not None
    return usage["count"]


def test_a_view_reports_its_tightest_limit_and_counts_every_limit():
    ip = fresh_ip("2/m")
    while seconds_left(ip, "5/m") < 30:
        ip = fresh_ip("2/m")
    view = TwoLimitsView.as_view()

    def post() -> Any:
        return view(APIRequestFactory().post("/", {}, format="json", REMOTE_ADDR=ip))

    for remaining in ("1", "0"):
        response = post()
        assert response.status_code == HTTPStatus.OK
        assert response["X-RateLimit-Limit"] == "2"
        assert response["X-RateLimit-Remaining"] == remaining
    response = post()
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60
    assert response.data == {
        "detail": f"Too many requests: the limit is 2 in this window. "
        f"Try again in {retry_after} seconds.",
        "code": "rate_limited",
    }
    assert response["X-RateLimit-Limit"] == "2"
    assert response["X-RateLimit-Remaining"] == "0"
    # DRF checks every throttle of the view, so the wide limit counted all three requests.
    assert count(WideThrottle, ip) == 3
    assert count(NarrowThrottle, ip) == 3


def test_a_rate_limit_throttle_needs_the_mixin():
    request = Request(APIRequestFactory().post("/", REMOTE_ADDR=fresh_ip("2/m")))
    with pytest.raises(ImproperlyConfigured, match="RateLimitMixin"):
        NarrowThrottle().allow_request(request, WithoutMixinView())


# --------------------------------------------------------------------------------------------
# Exact across processes: two uvicorn workers, one Redis


@pytest.mark.services
@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_burst_against_two_processes_admits_exactly_the_limit():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    # 200 requests, 20 in flight at once: under ASGI every request in flight holds a database
    # connection of its own, and PostgreSQL's default max_connections is 100.
    limit, burst, in_flight = 25, 200, 20
    user = fresh_user(f"{limit}/m", margin=45)
    prefix = f"rl-burst-{uuid.uuid4().hex[:12]}"
    env = {
        **database_env(),
        "CACHE_KEY_PREFIX": prefix,
        "RATE_LIMIT_PER_MINUTE": str(limit),
        "LLM_MODEL_PROVIDER": "offline",
        "LLM_MODEL_NAME": "offline",
        "OFFLINE_MODEL_STREAM_DELAY": "0",
        "DATABASE_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
    }
    headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}"}

    async def fire(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
            start = asyncio.Event()

            async def one(i: int) -> httpx.Response:
                await start.wait()
                return await client.post(RUN, json={"message": f"hi {i}"}, headers=headers)

            tasks = [asyncio.create_task(one(i)) for i in range(burst)]
            await asyncio.sleep(0.1)
            start.set()
            return await asyncio.gather(*tasks)

    try:
        with run_server(env, workers=2) as url:
            started = time.monotonic()
            responses = asyncio.run(fire(url))
            took = time.monotonic() - started
    finally:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)

    assert took < 40, f"the burst took {took:.1f}s: it may have spanned two windows"
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {HTTPStatus.OK: limit, HTTPStatus.TOO_MANY_REQUESTS: burst - limit}
    admitted = [r for r in responses if r.status_code == HTTPStatus.OK]
    # Every admitted request saw a different count: one counter, incremented atomically.
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in admitted) == list(range(limit))
    for response in responses:
        assert response.headers["X-RateLimit-Limit"] == str(limit)
        if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            assert response.json()["code"] == "rate_limited"
            assert 0 < int(response.headers["Retry-After"]) <= 60
    assert AgentRun.objects.filter(user=user).count() == limit


# --------------------------------------------------------------------------------------------
# Redis goes away, and comes back


class RedisServer:
    """A redis-server of this test's own (the shared one on 6379 is never stopped)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server not found"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis(settings: SettingsWrapper) -> Iterator[RedisServer]:
    """Rate limits count in a Redis of this test's own, which the test may stop and start."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    server.start()
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit-test": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "rl-own",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1.0,
                "SOCKET_TIMEOUT": 1.0,
            },
        },
    }
    settings.RATELIMIT_USE_CACHE = "ratelimit-test"
    try:
        yield server
    finally:
        server.stop()


def test_an_unreachable_cache_fails_open_then_closed(settings, caplog):
    # A Redis cache on a port nothing listens on: every count fails, on either run.
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit-test": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        },
    }
    settings.RATELIMIT_USE_CACHE = "ratelimit-test"
    settings.LOGIN_RATE_LIMIT = "1/m"
    wrong = {"username": "nobody@example.com", "password": "wrong-password"}
    errors_before = metric("ratelimit_backend_errors_total", "login")

    with caplog.at_level(logging.WARNING, logger="core.throttles"):
        for _ in range(2):  # over the limit, had it counted
            response = APIClient().post(LOGIN, wrong)
            assert response.status_code == HTTPStatus.BAD_REQUEST
            assert "X-RateLimit-Limit" not in response
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "core.throttles"] == [
        "Rate limit 'login' not checked, request let through",
        "Rate limit 'login-account' not checked, request let through",
    ] * 2

    settings.RATE_LIMIT_FAIL_OPEN = False
    response = APIClient().post(LOGIN, wrong)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "rate_limit_unavailable"
    assert "Retry-After" not in response
    assert metric("ratelimit_backend_errors_total", "login") == errors_before + 3


@pytest.mark.services
def test_redis_stopped_fails_open_or_closed_and_limits_resume_when_it_is_back(
    settings, own_redis, caplog, client_for
):
    settings.RATE_LIMIT_PER_MINUTE = 2
    user = fresh_user("2/m", margin=40)
    client = client_for(user)
    statuses: list[int] = []

    def post() -> Any:
        response = client.post(RUN, {"message": "hi"}, format="json")
        statuses.append(response.status_code)
        return response

    response = post()
    assert response.status_code == HTTPStatus.OK
    assert response["X-RateLimit-Remaining"] == "1"

    own_redis.stop()

    # Fail open (the default): through, with a warning and a metric, without limit headers.
    errors_before = metric("ratelimit_backend_errors_total", "agent")
    with caplog.at_level(logging.WARNING, logger="core.throttles"):
        for _ in range(3):  # more than the limit: nothing is counted
            response = post()
            assert response.status_code == HTTPStatus.OK, response.content
            assert "X-RateLimit-Limit" not in response
    warnings = [r for r in caplog.records if r.name == "core.throttles"]
    assert len(warnings) == 3
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert "let through" in warnings[0].getMessage()
    assert metric("ratelimit_backend_errors_total", "agent") == errors_before + 3

    # Fail closed: 503 JSON, and no run starts.
    settings.RATE_LIMIT_FAIL_OPEN = False
    runs = AgentRun.objects.filter(user=user).count()
    response = post()
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json() == {
        "detail": "Rate limiting is unavailable right now. Try again later.",
        "code": "rate_limit_unavailable",
    }
    assert AgentRun.objects.filter(user=user).count() == runs
    response = APIClient().post(LOGIN, {"username": user.email, "password": "x"})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "rate_limit_unavailable"
    assert metric("ratelimit_backend_errors_total", "agent") == errors_before + 4

    # Redis is back (empty: it kept nothing): limits count again, from zero.
    own_redis.start()
    for remaining in ("1", "0"):
        response = post()
        assert response.status_code == HTTPStatus.OK, response.content
        assert response["X-RateLimit-Remaining"] == remaining
    assert_limited(post(), limit=2)

    assert HTTPStatus.INTERNAL_SERVER_ERROR not in statuses
