from http import HTTPStatus

import pytest

from accounts.models import Item
from accounts.tests.factories import ItemFactory

pytestmark = pytest.mark.django_db


def test_item_crud(user, user_client):
    created = user_client.post("/api/v1/items/", {"title": "Notebook", "description": "A5"})
    assert created.status_code == HTTPStatus.CREATED
    item_id = created.json()["id"]
    assert created.json()["owner_id"] == str(user.id)

    assert user_client.get(f"/api/v1/items/{item_id}").json()["title"] == "Notebook"
    patched = user_client.patch(f"/api/v1/items/{item_id}", {"title": "Pad"})
    assert patched.json() | {"title": "Pad"} == patched.json()
    put = user_client.put(f"/api/v1/items/{item_id}", {"title": "Book", "description": ""})
    assert put.json()["description"] == ""

    assert user_client.delete(f"/api/v1/items/{item_id}").status_code == HTTPStatus.NO_CONTENT
    assert not Item.objects.filter(pk=item_id).exists()


def test_items_are_private_to_their_owner(user, user_client):
    mine = ItemFactory(owner=user)
    theirs = ItemFactory()

    listed = user_client.get("/api/v1/items/").json()
    assert [i["id"] for i in listed["results"]] == [str(mine.id)]
    for method in ("get", "patch", "delete"):
        response = getattr(user_client, method)(f"/api/v1/items/{theirs.id}")
        assert response.status_code == HTTPStatus.NOT_FOUND, method
        assert response.json()["code"] == "not_found"
    assert Item.objects.filter(pk=theirs.pk).exists()


def test_superuser_sees_every_item(admin_client_api):
    items = ItemFactory.create_batch(3)
    listed = admin_client_api.get("/api/v1/items/").json()
    assert {str(i.id) for i in items} <= {i["id"] for i in listed["results"]}
    other = items[0]
    assert admin_client_api.get(f"/api/v1/items/{other.id}").status_code == HTTPStatus.OK


def test_items_are_paginated(user, user_client):
    ItemFactory.create_batch(25, owner=user)
    first = user_client.get("/api/v1/items/").json()
    assert first["count"] == 25
    assert len(first["results"]) == 20
    assert first["next"]
    capped = user_client.get("/api/v1/items/?limit=1000").json()
    assert len(capped["results"]) == 25  # max_limit is 100


def test_item_validation(user_client):
    response = user_client.post("/api/v1/items/", {"description": "no title"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["errors"]["title"] == ["This field is required."]
    response = user_client.get("/api/v1/items/not-a-uuid")
    assert response.status_code == HTTPStatus.NOT_FOUND
