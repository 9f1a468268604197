"""Who may call which accounts endpoint."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import permissions
from rest_framework.request import Request

from accounts.errors import RegistrationClosed


class IsSuperuser(permissions.BasePermission):
    message = "Only superusers can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_superuser)


class RegistrationOpen(permissions.BasePermission):
    """Open registration only where ``USERS_OPEN_REGISTRATION`` allows it. Checked before the
    body is read, so a closed server answers 403 ``registration_closed`` whatever is sent."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not settings.USERS_OPEN_REGISTRATION:
            raise RegistrationClosed()
        return True
