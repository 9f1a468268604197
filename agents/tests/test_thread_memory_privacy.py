"""A deleted thread's memory never reaches anyone who reuses its id."""

from http import HTTPStatus

import pytest

from accounts.tests.factories import UserFactory
from agents.models import AgentThread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("how", ["admin-style delete", "owner deleted"])
def test_reused_thread_id_starts_without_the_old_memory(offline, client_for, how):
    alice, bob = UserFactory(), UserFactory()
    first = client_for(alice).post(
        "/api/v1/agent/run", {"message": "my secret is swordfish"}, format="json"
    )
    thread_id = first.json()["thread_id"]
    if how == "owner deleted":
        alice.delete()
    else:
        AgentThread.objects.get(pk=thread_id).delete()

    bob_client = client_for(bob)
    answer = bob_client.post(
        "/api/v1/agent/run", {"message": "hello", "thread_id": thread_id}, format="json"
    )
    assert answer.status_code == HTTPStatus.OK
    assert "swordfish" not in answer.json()["response"]
    messages = bob_client.get(f"/api/v1/agent/threads/{thread_id}").json()["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["hello"]
