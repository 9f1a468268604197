from datetime import timedelta
from http import HTTPStatus

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

LOGIN = "/api/v1/login/access-token"
ME = "/api/v1/users/me"

pytestmark = pytest.mark.django_db


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_login_with_form_fields_returns_a_bearer_token_that_authenticates(api_client):
    user = UserFactory(email="ada@example.com")
    response = api_client.post(
        LOGIN, {"username": "ada@example.com", "password": DEFAULT_PASSWORD}, format="multipart"
    )
    # The seed's curl sends application/x-www-form-urlencoded: check that exact encoding too.
    encoded = api_client.generic(
        "POST",
        LOGIN,
        f"username=ada%40example.com&password={DEFAULT_PASSWORD}",
        content_type="application/x-www-form-urlencoded",
    )
    for resp in (response, encoded):
        assert resp.status_code == HTTPStatus.OK, resp.content
        body = resp.json()
        assert body["token_type"] == "bearer"
        assert body["refresh_token"]
        me = bearer(body["access_token"]).get(ME)
        assert me.status_code == HTTPStatus.OK
        assert me.json()["id"] == str(user.id)


def test_login_with_json_and_any_email_case(api_client):
    UserFactory(email="grace@example.com")
    response = api_client.post(
        LOGIN, {"username": "Grace@Example.com", "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == HTTPStatus.OK
    assert response.json()["access_token"]


@pytest.mark.parametrize(
    ("username", "password"),
    [("grace@example.com", "wrong-password"), ("nobody@example.com", DEFAULT_PASSWORD)],
)
def test_wrong_credentials_are_a_json_400(api_client, username, password):
    UserFactory(email="grace@example.com")
    response = api_client.post(LOGIN, {"username": username, "password": password})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {
        "detail": "Incorrect email or password.",
        "code": "invalid_credentials",
    }


def test_missing_fields_name_each_field(api_client):
    response = api_client.post(LOGIN, {}, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {"username", "password"}


def test_inactive_user_is_refused_everywhere(api_client):
    user = UserFactory(email="gone@example.com", is_active=False)
    response = api_client.post(LOGIN, {"username": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "inactive_user"

    obtain = api_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert obtain.status_code == HTTPStatus.UNAUTHORIZED

    # A token issued before deactivation stops working too.
    token = str(AccessToken.for_user(user))
    assert bearer(token).get(ME).status_code == HTTPStatus.UNAUTHORIZED


def test_tampered_token_is_rejected(user):
    token = str(AccessToken.for_user(user))
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    response = bearer(tampered).get(ME)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "token_not_valid"


def test_expired_token_is_rejected(user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    response = bearer(str(token)).get(ME)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "token_not_valid"


def test_no_token_is_401_json(api_client):
    response = api_client.get(ME)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "not_authenticated"


def test_simplejwt_obtain_refresh_rotation_and_verify(api_client, user):
    pair = api_client.post(
        "/api/v1/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}
    ).json()
    verify = api_client.post("/api/v1/auth/token/verify/", {"token": pair["access"]})
    assert verify.status_code == HTTPStatus.OK

    rotated = api_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert rotated.status_code == HTTPStatus.OK
    assert rotated.json()["refresh"] != pair["refresh"]
    assert bearer(rotated.json()["access"]).get(ME).status_code == HTTPStatus.OK

    # Rotation blacklists the old refresh token.
    reused = api_client.post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert reused.status_code == HTTPStatus.UNAUTHORIZED


def test_logout_blacklists_the_refresh_token(api_client, user):
    tokens = api_client.post(LOGIN, {"username": user.email, "password": DEFAULT_PASSWORD}).json()
    logout = api_client.post("/api/v1/auth/logout", {"refresh": tokens["refresh_token"]})
    assert logout.status_code == HTTPStatus.NO_CONTENT
    again = api_client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh_token"]})
    assert again.status_code == HTTPStatus.UNAUTHORIZED
    bad = api_client.post("/api/v1/auth/logout", {"refresh": "not-a-token"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert bad.json()["code"] == "token_not_valid"
