"""A deleted thread's memory goes with it, and never reaches anyone who reuses its id."""

from http import HTTPStatus

import pytest
from django.db.models.signals import post_delete
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from accounts.tests.factories import UserFactory
from agents.checkpointer import get_checkpointer
from agents.models import AgentThread
from agents.runner import agent_run
from agents.signals import thread_memory_forget

pytestmark = pytest.mark.django_db(transaction=True)


def memory_of(thread_id: object) -> CheckpointTuple | None:
    config: RunnableConfig = {"configurable": {"thread_id": str(thread_id), "checkpoint_ns": ""}}
    return get_checkpointer().get_tuple(config)


@pytest.mark.parametrize("how", ["instance", "queryset", "owner deleted"])
def test_deleting_a_thread_through_the_orm_deletes_its_memory(offline, how):
    """The receiver in ``agents.signals``: the admin, a script or a cascade, not only the API."""
    alice = UserFactory()
    kept = agent_run(user=alice, message="keep this one")
    run = agent_run(user=UserFactory() if how == "owner deleted" else alice, message="forget me")
    assert memory_of(run.thread_id) is not None

    if how == "instance":
        AgentThread.objects.get(pk=run.thread_id).delete()
    elif how == "queryset":
        AgentThread.objects.filter(pk=run.thread_id).delete()
    else:
        run.user.delete()

    assert not AgentThread.objects.filter(pk=run.thread_id).exists()
    assert memory_of(run.thread_id) is None
    assert memory_of(kept.thread_id) is not None  # only that thread's


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


def test_memory_a_deletion_left_behind_is_purged_before_its_id_is_reused(offline):
    """A deletion whose receiver did not run (it failed: the checkpoint database was down)
    leaves memory behind: the id's next owner still starts from nothing."""
    alice, bob = UserFactory(), UserFactory()
    secret = agent_run(user=alice, message="my secret is swordfish")
    post_delete.disconnect(sender=AgentThread, dispatch_uid="agents.thread_memory")
    try:
        AgentThread.objects.filter(pk=secret.thread_id).delete()
    finally:
        post_delete.connect(
            thread_memory_forget, sender=AgentThread, dispatch_uid="agents.thread_memory"
        )
    assert memory_of(secret.thread_id) is not None  # orphaned

    answer = agent_run(user=bob, message="hello", thread_id=secret.thread_id)

    assert answer.thread.owner == bob
    assert "swordfish" not in answer.response
    memory = memory_of(secret.thread_id)  # bob's now
    assert memory is not None
    messages = memory.checkpoint["channel_values"]["messages"]
    assert [m.text for m in messages if m.type == "human"] == ["hello"]
