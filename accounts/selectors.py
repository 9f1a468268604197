"""Reads for accounts: every query that depends on who is asking lives here."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Item, User
from agents.budget import token_budget


def user_list(*, actor: User) -> QuerySet[User]:
    """All users for a superuser; only themself for anyone else."""
    qs = User.objects.all().order_by("email")
    return qs if actor.is_superuser else qs.filter(pk=actor.pk)


def user_get_by_email(*, email: str) -> User | None:
    """The user with this email, in any case; None if there is none."""
    return User.objects.filter(email__iexact=email.strip()).first()


def user_token_budget(*, user: User) -> dict[str, int | None]:
    """The user's daily agent token budget: ``{"daily_limit", "used_today", "remaining"}``
    (limit and remaining None when there is no budget). Counted by ``agents.budget``."""
    return token_budget(user)


def item_list_for_user(*, actor: User) -> QuerySet[Item]:
    qs = Item.objects.select_related("owner").order_by("-created_at", "id")
    return qs if actor.is_superuser else qs.filter(owner=actor)
