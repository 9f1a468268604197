"""Reads for accounts: every query that depends on who is asking lives here."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Item, User


def user_list(*, actor: User) -> QuerySet[User]:
    """All users for a superuser; only themself for anyone else."""
    qs = User.objects.all().order_by("email")
    return qs if actor.is_superuser else qs.filter(pk=actor.pk)


def item_list_for_user(*, actor: User) -> QuerySet[Item]:
    qs = Item.objects.select_related("owner").order_by("-created_at", "id")
    return qs if actor.is_superuser else qs.filter(owner=actor)
