"""Credentials changed, tokens revoked: whichever path saved the user (the API, the admin's
password form, ``manage.py changepassword``, a deactivation), a new password or a deactivation
blacklists every outstanding refresh token of the user once the change is committed."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import User


def user_credentials_watch(sender: type[User], instance: User, **kwargs: Any) -> None:
    """pre_save: remember whether this save changes the password or deactivates the user."""
    instance._revoke_tokens = False  # type: ignore[attr-defined]
    update_fields = kwargs.get("update_fields")
    if instance._state.adding or kwargs.get("raw"):
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. last_login on every login: no query
    stored = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if stored is None:
        return
    changed = stored["password"] != instance.password
    deactivated = stored["is_active"] and not instance.is_active
    instance._revoke_tokens = changed or deactivated  # type: ignore[attr-defined]


def user_credentials_revoke(sender: type[User], instance: User, **kwargs: Any) -> None:
    """post_save: blacklist the user's refresh tokens after a password change or deactivation."""
    if getattr(instance, "_revoke_tokens", False):
        from accounts.services import refresh_tokens_revoke_for_user

        user_id = instance.pk
        transaction.on_commit(lambda: refresh_tokens_revoke_for_user(user_id=user_id))
