"""Writes for accounts. Keyword-only, atomic, named ``<thing>_<action>``."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import selectors
from accounts.errors import (
    CannotDeactivateSelf,
    EmailAlreadyRegistered,
    InactiveUser,
    InvalidCredentials,
    TokenNotValid,
    WrongPassword,
)
from accounts.models import Item, User, UserManager

logger = logging.getLogger(__name__)


def _validate_new_password(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc


@transaction.atomic
def user_create(
    *,
    email: str,
    password: str,
    full_name: str = "",
    is_superuser: bool = False,
    is_active: bool = True,
) -> User:
    email = UserManager.normalize_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise EmailAlreadyRegistered()
    _validate_new_password(password, User(email=email, full_name=full_name))
    return User.objects.create_user(
        email=email,
        password=password,
        full_name=full_name,
        is_superuser=is_superuser,
        is_staff=is_superuser,
        is_active=is_active,
    )


@transaction.atomic
def user_update(*, user: User, data: dict[str, Any]) -> User:
    """Update profile fields; ``is_superuser``/``is_active`` only reach here from admin views."""
    if "email" in data:
        email = UserManager.normalize_email(data.pop("email"))
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise EmailAlreadyRegistered()
        user.email = email
    if "password" in data:
        password = data.pop("password")
        _validate_new_password(password, user)
        user.set_password(password)
    for field in ("full_name", "is_active", "is_superuser"):
        if field in data:
            setattr(user, field, data.pop(field))
    user.is_staff = user.is_superuser
    user.save()
    return user


@transaction.atomic
def user_change_password(*, user: User, current_password: str, new_password: str) -> User:
    if not user.check_password(current_password):
        raise WrongPassword()
    if current_password == new_password:
        raise ValidationError(
            {"new_password": ["The new password must differ from the current one."]}
        )
    try:
        validate_password(new_password, user=user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from exc
    user.set_password(new_password)
    user.save(update_fields=["password"])
    return user


@transaction.atomic
def user_deactivate(*, user: User, actor: User) -> User:
    """Deactivate ``user`` (no data is deleted); nobody deactivates themself."""
    if user.pk == actor.pk:
        raise CannotDeactivateSelf()
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user


def user_authenticate(*, request: HttpRequest | None, email: str, password: str) -> User:
    """The active user with these credentials; ``InactiveUser`` only with the right password.

    The password hasher runs exactly once whoever asks (an active, an inactive or an unknown
    user), so the time taken tells nothing about the account.
    """
    candidate = selectors.user_get_by_email(email=email)
    if candidate is not None and not candidate.is_active:
        if candidate.check_password(password):
            raise InactiveUser()
        raise InvalidCredentials()
    # An active or unknown email: ModelBackend hashes once either way (a dummy hash when the
    # user does not exist).
    user = authenticate(request, username=email, password=password)
    if user is None:
        raise InvalidCredentials()
    assert isinstance(user, User)
    return user


@transaction.atomic
def token_pair_create(*, user: User) -> dict[str, Any]:
    """A new access and refresh token (the refresh one recorded for the blacklist); the user's
    last login is now."""
    refresh = RefreshToken.for_user(user)
    access = refresh.access_token
    update_last_login(User, user)
    return {
        "access_token": str(access),
        "refresh_token": str(refresh),
        "token_type": "bearer",
        "expires_in": int(access.lifetime.total_seconds()),
    }


@transaction.atomic
def refresh_token_blacklist(*, token: str) -> None:
    """Blacklist a refresh token so that it can't mint new access tokens."""
    try:
        RefreshToken(token).blacklist()  # type: ignore[arg-type]  # takes the encoded token
    except TokenError as exc:
        raise TokenNotValid(str(exc)) from exc


@transaction.atomic
def refresh_tokens_revoke_for_user(*, user_id: Any) -> int:
    """Blacklist every outstanding refresh token of the user that is not blacklisted yet (on a
    password change or reset and on deactivation: ``accounts.signals``); the number revoked.
    Access tokens die with them: they carry a hash of the password (``CHECK_REVOKE_TOKEN``) and
    an inactive user's are refused on every request."""
    outstanding = OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
    revoked = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    return len(revoked)


@transaction.atomic
def item_create(*, owner: User, title: str, description: str = "") -> Item:
    return Item.objects.create(owner=owner, title=title, description=description)


@transaction.atomic
def item_update(*, item: Item, data: dict[str, Any]) -> Item:
    for field in ("title", "description"):
        if field in data:
            setattr(item, field, data[field])
    item.save()
    return item


def item_delete(*, item: Item) -> None:
    item.delete()


def first_superuser_ensure() -> User | None:
    """Create ``FIRST_SUPERUSER`` if it does not exist yet; never touches an existing user."""
    email = UserManager.normalize_email(settings.FIRST_SUPERUSER)
    password = settings.FIRST_SUPERUSER_PASSWORD
    if not email or not password:
        return None
    try:
        with transaction.atomic():
            user, created = User.objects.get_or_create(
                email=email,
                defaults={"is_superuser": True, "is_staff": True, "full_name": "Admin"},
            )
    except IntegrityError:  # another replica migrated at the same moment
        return User.objects.get(email=email)
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
        logger.info("Created the first superuser %s", email)
    return user


def first_superuser_ensure_on_migrate(using: str = "default", **kwargs: Any) -> None:
    if using == "default":
        first_superuser_ensure()
