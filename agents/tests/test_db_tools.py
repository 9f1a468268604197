"""The database tools over ``agents.directory.ScopedDirectory``: what a caller may see, and
nothing secret."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from django.db import connections
from langchain_core.tools import BaseTool

from accounts.models import User
from accounts.tests.factories import ItemFactory, UserFactory
from agents.directory import tools_for_user

DB_TOOLS = ["lookup_user_by_email", "lookup_item_by_id", "lookup_user_items", "list_users"]
HTTP_TOOLS = ["http_get", "http_post"]
USER_FIELDS = {"id", "email", "full_name", "is_active", "is_superuser"}
ITEM_FIELDS = {"id", "title", "description", "owner_id", "created_at"}
SECRET_MARKERS = ("password", "pbkdf2", "md5$", "argon2", "bcrypt", "token", "secret", "is_staff")


def tools_for(user: User) -> dict[str, BaseTool]:
    return {t.name: t for t in tools_for_user(user=user)}


def invoke(tools: dict[str, BaseTool], name: str, **args: Any) -> dict[str, Any]:
    output = tools[name].invoke(args)
    assert isinstance(output, str)
    for marker in SECRET_MARKERS:
        assert marker not in output.lower(), f"{name} leaked {marker!r}: {output}"
    return json.loads(output)


def assert_not_found(result: dict[str, Any]) -> None:
    assert set(result) == {"error", "code"}
    assert result["code"] == "not_found"


@pytest.fixture
def other(db: None) -> User:
    return UserFactory(email="other@example.com", full_name="Other Person")


# -- registry -------------------------------------------------------------------------------


def test_registry_names(user: User) -> None:
    assert [t.name for t in tools_for_user(user=user)] == DB_TOOLS + HTTP_TOOLS


def test_registry_without_http_tools(user: User, settings: Any) -> None:
    settings.HTTP_TOOLS_ENABLED = False

    assert [t.name for t in tools_for_user(user=user)] == DB_TOOLS


def test_registry_without_a_user_has_no_database_tools(settings: Any) -> None:
    assert [t.name for t in tools_for_user(user=None)] == HTTP_TOOLS
    settings.HTTP_TOOLS_ENABLED = False
    assert tools_for_user(user=None) == []


# -- a normal user --------------------------------------------------------------------------


def test_user_finds_themself_by_email(user: User, other: User) -> None:
    tools = tools_for(user)

    result = invoke(tools, "lookup_user_by_email", email=f"  {user.email.upper()} ")

    assert result == {
        "user": {
            "id": str(user.id),
            "email": user.email,
            "full_name": user.full_name,
            "is_active": True,
            "is_superuser": False,
        }
    }


def test_user_cannot_see_another_user_by_email(user: User, other: User) -> None:
    tools = tools_for(user)

    hidden = invoke(tools, "lookup_user_by_email", email=other.email)
    missing = invoke(tools, "lookup_user_by_email", email="nobody@example.com")

    assert_not_found(hidden)
    assert_not_found(missing)
    assert other.full_name not in json.dumps(hidden)
    assert str(other.id) not in json.dumps(hidden)


def test_user_finds_own_item_but_not_anothers(user: User, other: User) -> None:
    mine = ItemFactory(owner=user, title="My lamp")
    theirs = ItemFactory(owner=other, title="Their secret diary")
    tools = tools_for(user)

    found = invoke(tools, "lookup_item_by_id", item_id=str(mine.id))
    hidden = invoke(tools, "lookup_item_by_id", item_id=str(theirs.id))
    missing = invoke(tools, "lookup_item_by_id", item_id=str(uuid.uuid4()))

    assert set(found["item"]) == ITEM_FIELDS
    assert found["item"]["id"] == str(mine.id)
    assert found["item"]["title"] == "My lamp"
    assert found["item"]["owner_id"] == str(user.id)
    assert_not_found(hidden)
    assert_not_found(missing)
    assert "diary" not in json.dumps(hidden)


def test_user_items_default_to_own_items(user: User, other: User) -> None:
    mine = ItemFactory.create_batch(3, owner=user)
    ItemFactory.create_batch(2, owner=other)
    tools = tools_for(user)

    result = invoke(tools, "lookup_user_items")

    assert result["count"] == 3
    assert {i["id"] for i in result["items"]} == {str(i.id) for i in mine}
    assert {i["owner_id"] for i in result["items"]} == {str(user.id)}
    # Newest first.
    created = [i["created_at"] for i in result["items"]]
    assert created == sorted(created, reverse=True)

    explicit = invoke(tools, "lookup_user_items", user_id=str(user.id), limit=2)
    assert explicit["count"] == 2
    assert explicit["user_id"] == str(user.id)


def test_user_cannot_list_another_users_items(user: User, other: User) -> None:
    ItemFactory.create_batch(2, owner=other)
    tools = tools_for(user)

    assert_not_found(invoke(tools, "lookup_user_items", user_id=str(other.id)))
    assert_not_found(invoke(tools, "lookup_user_items", user_id=str(uuid.uuid4())))


def test_user_lists_only_themself(user: User, other: User) -> None:
    UserFactory.create_batch(3)
    tools = tools_for(user)

    result = invoke(tools, "list_users")

    assert result["count"] == 1
    assert [u["id"] for u in result["users"]] == [str(user.id)]
    assert set(result["users"][0]) == USER_FIELDS


# -- a superuser ----------------------------------------------------------------------------


def test_superuser_sees_everything(superuser: User, user: User, other: User) -> None:
    item = ItemFactory(owner=other, title="Other's item")
    ItemFactory(owner=user)
    tools = tools_for(superuser)

    found = invoke(tools, "lookup_user_by_email", email=other.email)
    assert found["user"]["id"] == str(other.id)
    assert found["user"]["full_name"] == "Other Person"

    assert (
        invoke(tools, "lookup_item_by_id", item_id=str(item.id))["item"]["title"] == "Other's item"
    )

    their_items = invoke(tools, "lookup_user_items", user_id=str(other.id))
    assert [i["id"] for i in their_items["items"]] == [str(item.id)]

    own_items = invoke(tools, "lookup_user_items")
    assert own_items["count"] == 0

    everyone = invoke(tools, "list_users", limit=100)
    # Everyone, including the FIRST_SUPERUSER that post_migrate creates.
    all_ids = {str(pk) for pk in User.objects.values_list("pk", flat=True)}
    assert {str(superuser.id), str(user.id), str(other.id)} <= all_ids
    assert {u["id"] for u in everyone["users"]} == all_ids
    assert everyone["count"] == len(all_ids)
    emails = [u["email"] for u in everyone["users"]]
    assert emails == sorted(emails)
    superuser_record = next(u for u in everyone["users"] if u["id"] == str(superuser.id))
    assert superuser_record["is_superuser"] is True

    assert invoke(tools, "list_users", limit=2)["count"] == 2


def test_superuser_still_gets_not_found_for_missing_rows(superuser: User) -> None:
    tools = tools_for(superuser)

    assert_not_found(invoke(tools, "lookup_user_by_email", email="ghost@example.com"))
    assert_not_found(invoke(tools, "lookup_item_by_id", item_id=str(uuid.uuid4())))
    assert_not_found(invoke(tools, "lookup_user_items", user_id=str(uuid.uuid4())))


def test_results_never_contain_password_hashes(superuser: User, user: User) -> None:
    ItemFactory(owner=user)
    assert user.password.startswith("md5$")  # the test hasher; the marker check is meaningful
    tools = tools_for(superuser)

    outputs = [
        tools["lookup_user_by_email"].invoke({"email": user.email}),
        tools["lookup_user_items"].invoke({"user_id": str(user.id)}),
        tools["list_users"].invoke({"limit": 100}),
    ]

    for output in outputs:
        assert user.password not in output
        assert superuser.password not in output
        for marker in SECRET_MARKERS:
            assert marker not in output.lower()


# -- threads --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_tool_called_from_another_thread_closes_its_connection() -> None:
    owner = UserFactory()
    ItemFactory.create_batch(2, owner=owner)
    tools = tools_for(owner)
    seen: dict[str, Any] = {}

    def worker() -> None:
        try:
            seen["output"] = tools["lookup_user_items"].invoke({})
            seen["users"] = tools["list_users"].invoke({})
            seen["open"] = [
                alias
                for alias in connections
                if connections[alias].connection is not None  # this thread's wrapper
            ]
        except BaseException as exc:
            seen["error"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=30)

    assert not thread.is_alive()
    assert "error" not in seen, seen.get("error")
    assert json.loads(seen["output"])["count"] == 2
    assert json.loads(seen["users"])["users"][0]["id"] == str(owner.id)
    assert seen["open"] == []


@pytest.mark.django_db(transaction=True)
def test_tool_called_on_the_owner_thread_keeps_its_connection() -> None:
    owner = UserFactory()
    tools = tools_for(owner)

    result = json.loads(tools["list_users"].invoke({}))

    assert result["count"] == 1
    # The caller's own connection belongs to the request/test: the directory leaves it alone.
    assert connections["default"].connection is not None
