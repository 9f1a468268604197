"""The accounts' domain errors; ``core.exception_handler`` turns them into JSON responses."""

from __future__ import annotations

from http import HTTPStatus

from core.errors import ApplicationError


class InvalidCredentials(ApplicationError):
    code = "invalid_credentials"
    default_detail = "Incorrect email or password."


class InactiveUser(ApplicationError):
    code = "inactive_user"
    default_detail = "This account is inactive."


class RegistrationClosed(ApplicationError):
    status_code = HTTPStatus.FORBIDDEN
    code = "registration_closed"
    default_detail = "Open user registration is not allowed on this server."


class CannotDeactivateSelf(ApplicationError):
    code = "cannot_deactivate_self"
    default_detail = "Superusers cannot deactivate themselves."


class EmailAlreadyRegistered(ApplicationError):
    code = "email_taken"
    default_detail = "A user with this email already exists."


class WrongPassword(ApplicationError):
    code = "wrong_password"
    default_detail = "The current password is not correct."


class TokenNotValid(ApplicationError):
    """A refresh token that is malformed, expired or already blacklisted; the detail says
    which."""

    code = "token_not_valid"
    default_detail = "Token is invalid or expired."
