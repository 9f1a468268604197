"""The one exception handler: what it answers for errors that no API test provokes on purpose
(the rest is covered through the endpoints, config/tests/test_api_errors.py among them)."""

from __future__ import annotations

import logging
from http import HTTPStatus

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions

from core.errors import ApplicationError
from core.exception_handler import exception_handler


def test_a_domain_error_answers_its_status_code_extra_and_headers():
    error = ApplicationError("Nope.", code="nope", extra={"run_id": "r1"})
    error.headers = {"Retry-After": "5"}
    response = exception_handler(error, {})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.data == {"detail": "Nope.", "code": "nope", "run_id": "r1"}
    assert response["Retry-After"] == "5"


def test_a_crash_is_a_logged_json_500(caplog):
    with caplog.at_level(logging.ERROR, logger="core.exception_handler"):
        response = exception_handler(RuntimeError("boom"), {})
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response.data == {"detail": "Internal server error.", "code": "server_error"}
    assert "boom" in caplog.text


def test_djangos_permission_denied_is_a_403_without_its_message():
    response = exception_handler(DjangoPermissionDenied("internal reason"), {})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.data == {
        "detail": "You do not have permission to perform this action.",
        "code": "permission_denied",
    }


def test_djangos_validation_error_is_per_field():
    response = exception_handler(DjangoValidationError({"title": ["Too long."]}), {})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.data == {
        "detail": "Invalid input.",
        "code": "invalid",
        "errors": {"title": ["Too long."]},
    }


def test_a_validation_error_without_fields_is_a_non_field_error():
    response = exception_handler(exceptions.ValidationError("Pick one."), {})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.data["code"] == "invalid"
    assert response.data["errors"] == {"non_field_errors": ["Pick one."]}


@pytest.mark.django_db
def test_too_many_form_fields_is_a_json_400(user_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = "&".join(f"f{i}=x" for i in range(10))
    response = user_client.generic(
        "POST", "/api/v1/items/", fields, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"detail": "Bad request.", "code": "bad_request"}


@pytest.mark.parametrize("error", ["OperationalError", "InterfaceError"])
def test_a_database_that_is_away_is_a_503_not_a_500(error, caplog):
    from django import db

    exc = getattr(db, error)("couldn't get a connection after 10.00 sec")
    with caplog.at_level(logging.WARNING, logger="core.exception_handler"):
        response = exception_handler(exc, {})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.data["code"] == "database_unavailable"
    assert response["Retry-After"] == "5"
    assert "Traceback" not in caplog.text


def test_a_data_error_from_the_database_is_still_a_logged_500(caplog):
    from django.db import IntegrityError

    with caplog.at_level(logging.ERROR, logger="core.exception_handler"):
        response = exception_handler(IntegrityError("duplicate key"), {})
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
