"""The run path's guards, in process: one run per thread (409 ``thread_busy``), a run whose
thread is deleted while it runs, the token ledger that deletion cannot reset and its
reservations, the run's overall deadline, and the stale-run sweeper with ``manage.py
sweep_runs``. (The same faults on a live production-mode server: ``test_faults_live.py``.)"""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from langchain_core.messages import AIMessage, HumanMessage

from accounts.models import User
from accounts.tests.factories import UserFactory
from agents import selectors, services
from agents.budget import token_usage_reserve, token_usage_settle
from agents.errors import LLMUnavailable, RunDeleted, RunTimeout, TokenBudgetExceeded
from agents.events import RunEvent
from agents.models import AgentRun, AgentThread, TokenUsage
from agents.runner import _graph_for, agent_run, agent_run_execute, agent_run_start
from agents.sweeper import run_sweep_stale
from agents.tests.test_runner import assert_every_tool_call_answered
from testing.llm_server import FakeLLMServer, Reply

RUN = "/api/v1/agent/run"
STREAM = "/api/v1/agent/run/stream"
ME = "/api/v1/users/me"
THREADS = "/api/v1/agent/threads"


def ledger(user: User) -> tuple[int, int]:
    return selectors.token_usage_today(user=user)


def running_run(user: User, *, thread: AgentThread | None = None, age_s: float = 0) -> AgentRun:
    thread = thread or AgentThread.objects.create(owner=user, title="busy")
    run = AgentRun.objects.create(user=user, thread=thread, input="hi", status="running")
    if age_s:
        AgentRun.objects.filter(pk=run.pk).update(
            created_at=timezone.now() - timedelta(seconds=age_s)
        )
        run.refresh_from_db()
    return run


# -- one run per thread ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("offline")
def test_a_second_run_on_a_busy_thread_is_409_thread_busy(settings, user, user_client):
    settings.AGENT_DAILY_TOKEN_BUDGET = 10_000
    busy = running_run(user)
    runs = AgentRun.objects.count()

    for path in (RUN, STREAM):
        response = user_client.post(
            path, {"message": "again", "thread_id": str(busy.thread_id)}, format="json"
        )
        assert response.status_code == HTTPStatus.CONFLICT, response.content
        assert response["Content-Type"].startswith("application/json")
        assert response.json() == {
            "detail": "A run of this thread is in progress. Wait for it to finish, then send "
            "the message.",
            "code": "thread_busy",
        }
    assert AgentRun.objects.count() == runs
    assert ledger(user) == (0, 0)  # the refused runs' reservations were given back

    # Once the run ends, the thread takes the next message.
    AgentRun.objects.filter(pk=busy.pk).update(status="success")
    response = user_client.post(
        RUN, {"message": "again", "thread_id": str(busy.thread_id)}, format="json"
    )
    assert response.status_code == HTTPStatus.OK, response.content


@pytest.mark.django_db
def test_the_database_itself_refuses_two_running_runs_of_a_thread(user):
    """What makes the rule hold across processes: not a check in Python but a unique index."""
    busy = running_run(user)
    AgentRun.objects.create(user=user, thread=busy.thread, input="done", status="success")
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentRun.objects.create(user=user, thread=busy.thread, input="b", status="running")
    # Other threads are not affected.
    running_run(user)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("offline")
def test_a_run_whose_thread_is_deleted_while_it_runs_ends_thread_deleted_not_done(settings):
    settings.AGENT_DAILY_TOKEN_BUDGET = 100_000
    user = UserFactory()
    run = agent_run_start(user=user, message="Tell me a story.")
    stream = agent_run_execute(run=run, tokens=True)
    assert isinstance(next(stream), RunEvent)
    services.thread_delete(thread=AgentThread.objects.get(pk=run.thread_id))

    with pytest.raises(RunDeleted) as raised:
        list(stream)

    assert raised.value.status_code == HTTPStatus.CONFLICT
    assert raised.value.code == "thread_deleted"
    assert raised.value.extra["run_id"] == str(run.id)
    assert not AgentRun.objects.filter(pk=run.pk).exists()
    used, reserved = ledger(user)
    assert used == run.total_tokens  # the deleted run's tokens still count
    assert used > 0
    assert reserved == 0


# -- the token ledger ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("offline")
def test_deleting_threads_does_not_reset_the_daily_budget(settings, user, user_client):
    settings.AGENT_DAILY_TOKEN_BUDGET = 10_000
    first = user_client.post(RUN, {"message": "hello"}, format="json").json()
    second = user_client.post(RUN, {"message": "hello again"}, format="json").json()
    used = first["usage"]["total_tokens"] + second["usage"]["total_tokens"]
    assert used > 0
    before = user_client.get(ME).json()["token_budget"]
    assert before == {"daily_limit": 10_000, "used_today": used, "remaining": 10_000 - used}

    for body in (first, second):
        response = user_client.delete(f"{THREADS}/{body['thread_id']}")
        assert response.status_code == HTTPStatus.NO_CONTENT
    assert not AgentRun.objects.filter(user=user).exists()

    assert user_client.get(ME).json()["token_budget"] == before
    assert selectors.tokens_used_today(user=user) == used

    # And a used-up budget stays used up after the threads are gone.
    settings.AGENT_DAILY_TOKEN_BUDGET = used
    assert user_client.post(RUN, {"message": "hi"}, format="json").status_code == 429


@pytest.mark.django_db
def test_reservations_keep_concurrent_starts_within_the_budget(settings, user):
    settings.AGENT_DAILY_TOKEN_BUDGET = 100
    settings.AGENT_RUN_TOKEN_RESERVE = 30
    assert [token_usage_reserve(user=user) for _ in range(3)] == [30, 30, 30]
    assert ledger(user) == (0, 90)
    # 10 left, held by nobody, but three runs are in progress: the fourth waits for them.
    with pytest.raises(TokenBudgetExceeded) as refused:
        token_usage_reserve(user=user)
    assert refused.value.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "reserved by runs in progress" in refused.value.detail
    assert int(refused.value.headers["Retry-After"]) == 5

    day = selectors.utc_day_start().date()
    for used in (25, 30, 35):  # one used more than it reserved
        token_usage_settle(user_id=user.pk, day=day, used=used, release=30)
    assert ledger(user) == (90, 0)
    # Less than a reservation left and nothing in progress: one run may take the rest.
    assert token_usage_reserve(user=user) == 10
    with pytest.raises(TokenBudgetExceeded):
        token_usage_reserve(user=user)
    token_usage_settle(user_id=user.pk, day=day, used=12, release=10)
    assert ledger(user) == (102, 0)  # over by what the last run used beyond its reservation
    with pytest.raises(TokenBudgetExceeded) as refused:
        token_usage_reserve(user=user)
    assert "used up" in refused.value.detail
    # Another user's ledger is their own; no budget: no reservation.
    assert token_usage_reserve(user=UserFactory()) == 30
    settings.AGENT_DAILY_TOKEN_BUDGET = 0
    assert token_usage_reserve(user=user) == 0
    assert TokenUsage.objects.get(user=user).reserved == 0


@pytest.mark.django_db
def test_a_failed_run_settles_what_it_used_and_releases_its_reservation(
    settings, llm_server: FakeLLMServer, user
):
    settings.AGENT_DAILY_TOKEN_BUDGET = 1000
    settings.AGENT_RUN_TOKEN_RESERVE = 200
    llm_server.enqueue(Reply.text("1. Answer.", prompt_tokens=40, completion_tokens=2))
    llm_server.enqueue(Reply.error(500, "upstream broke"))
    with pytest.raises(LLMUnavailable):
        agent_run(user=user, message="hello")
    assert ledger(user) == (42, 0)


# -- the run's overall deadline -------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_past_its_deadline_ends_504_run_timeout_and_is_recorded(
    settings, llm_server: FakeLLMServer, user, user_client
):
    settings.AGENT_RUN_TIMEOUT_SECONDS = 0.5
    llm_server.enqueue(
        Reply.text("1. Look the user up.", delay=0.7),  # within LLM_TIMEOUT_SECONDS (2)
        Reply.text("never asked"),
    )
    response = user_client.post(RUN, {"message": "who am I?"}, format="json")

    assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT, response.content
    body = response.json()
    assert body["code"] == "run_timeout"
    assert "0.5 seconds" in body["detail"]
    run = AgentRun.objects.get(pk=body["run_id"])
    assert run.status == AgentRun.Status.ERROR
    assert run.error.startswith("run_timeout: ")
    assert run.total_tokens == 18  # the planner's call counted
    assert len(llm_server.requests) == 1  # the executor's call never started

    settings.AGENT_RUN_TIMEOUT_SECONDS = 30
    response = user_client.post(
        RUN, {"message": "again", "thread_id": body["thread_id"]}, format="json"
    )
    assert response.status_code == HTTPStatus.OK, response.content


@pytest.mark.django_db(transaction=True)
def test_tool_calls_a_timed_out_run_left_are_answered(settings, llm_server: FakeLLMServer):
    settings.AGENT_RUN_TIMEOUT_SECONDS = 2
    settings.LLM_TIMEOUT_SECONDS = 10
    user = UserFactory()
    llm_server.enqueue(
        Reply.text("1. Look the user up."),
        Reply.tool_calls([("lookup_user_by_email", {"email": user.email})], delay=2.5),
        Reply.text("never asked"),
    )
    with pytest.raises(RunTimeout) as raised:
        agent_run(user=user, message="who am I?")
    run = AgentRun.objects.get(pk=raised.value.extra["run_id"])
    assert [c["name"] for c in run.tool_calls] == ["lookup_user_by_email"]
    assert_every_tool_call_answered(str(run.thread_id))


# -- the sweeper ----------------------------------------------------------------------------


def leave_open_tool_call(run: AgentRun) -> None:
    """The thread's memory as a worker killed mid-tool leaves it: an unanswered tool call."""
    graph = _graph_for(model=None, checkpointer=None)
    config = {"configurable": {"thread_id": str(run.thread_id)}}
    call = {"id": "call_killed", "name": "lookup_user_items", "args": {}}
    graph.update_state(
        config,
        {"messages": [HumanMessage(content=run.input), AIMessage(content="", tool_calls=[call])]},
        as_node="executor",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("offline")
def test_the_sweeper_ends_stale_runs_as_abandoned_and_repairs_their_threads(settings):
    settings.AGENT_DAILY_TOKEN_BUDGET = 100_000
    settings.AGENT_RUN_STALE_AFTER_SECONDS = 600
    user = UserFactory()
    stale = running_run(user, age_s=700)
    AgentRun.objects.filter(pk=stale.pk).update(reserved_tokens=4000)
    stale.refresh_from_db()
    day = selectors.utc_day_start(stale.created_at).date()
    TokenUsage.objects.create(user=user, day=day, used=100, reserved=4000)
    leave_open_tool_call(stale)
    fresh = running_run(user, age_s=10)

    swept = run_sweep_stale()

    assert [s.id for s in swept] == [str(stale.id)]
    stale.refresh_from_db()
    assert stale.status == AgentRun.Status.ERROR
    assert stale.error.startswith("abandoned: ")
    assert stale.finished_at is not None
    assert AgentRun.objects.get(pk=fresh.pk).status == AgentRun.Status.RUNNING
    assert TokenUsage.objects.get(user=user, day=day).reserved == 0
    assert_every_tool_call_answered(str(stale.thread_id))
    # The thread's next turn works.
    run = agent_run(user=user, message="and now?", thread_id=stale.thread_id)
    assert run.status == AgentRun.Status.SUCCESS
    assert run_sweep_stale() == []  # ended once


@pytest.mark.django_db
def test_the_sweeper_ages_a_run_from_its_start_and_never_ends_a_waiting_one(
    settings, user, monkeypatch
):
    """A run that waited in its thread's queue has run only since it started; a run still
    waiting (``pending``) has no process that could have abandoned it: it is handed the thread
    once the run before it is swept."""
    settings.AGENT_RUN_STALE_AFTER_SECONDS = 600
    dispatched: list[str] = []
    monkeypatch.setattr(
        "agents.control.run_dispatch", lambda *, run_id: dispatched.append(str(run_id))
    )
    long_ago = timezone.now() - timedelta(seconds=700)
    waited = running_run(user, age_s=700)
    AgentRun.objects.filter(pk=waited.pk).update(started_at=timezone.now() - timedelta(seconds=10))
    stale = running_run(user, age_s=700)
    AgentRun.objects.filter(pk=stale.pk).update(started_at=long_ago)
    queued = AgentRun.objects.create(
        user=user, thread=waited.thread, input="later", status=AgentRun.Status.PENDING
    )
    AgentRun.objects.filter(pk=queued.pk).update(created_at=long_ago)

    assert [s.id for s in run_sweep_stale()] == [str(stale.id)]
    assert run_status_of(waited) == AgentRun.Status.RUNNING
    assert run_status_of(queued) == AgentRun.Status.PENDING
    assert [s.id for s in run_sweep_stale(older_than=timedelta(0))] == [str(waited.id)]
    assert run_status_of(queued) == AgentRun.Status.PENDING
    assert dispatched == [str(queued.id)]


def run_status_of(run: AgentRun) -> str:
    return AgentRun.objects.values_list("status", flat=True).get(pk=run.pk)


@pytest.mark.django_db
def test_sweep_runs_command(settings, user):
    settings.AGENT_RUN_STALE_AFTER_SECONDS = 3600
    old = running_run(user, age_s=120)
    out = StringIO()

    call_command("sweep_runs", "--older-than", "60", "--dry-run", stdout=out)
    assert f"would end run {old.id}" in out.getvalue()
    assert "1 run(s) would end as abandoned." in out.getvalue()
    assert AgentRun.objects.get(pk=old.pk).status == AgentRun.Status.RUNNING

    out = StringIO()
    call_command("sweep_runs", stdout=out)  # the default age: not stale yet
    assert "0 run(s) ended" in out.getvalue()

    out = StringIO()
    call_command("sweep_runs", "--older-than", "60", stdout=out)
    assert f"ended run {old.id}" in out.getvalue()
    assert AgentRun.objects.get(pk=old.pk).error.startswith("abandoned: ")

    with pytest.raises(CommandError):
        call_command("sweep_runs", "--older-than", "-1")


@pytest.mark.django_db(transaction=True)  # the worker_ready sweep closes its connections
@pytest.mark.usefixtures("offline")
def test_celery_sweeps_on_its_beat_schedule_and_when_a_worker_starts(settings):
    pytest.importorskip("celery")
    user = UserFactory()
    from celery.signals import worker_ready

    from agents import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["agents-sweep-runs"]
    assert entry["task"] == tasks.sweep_runs.name == "agents.tasks.sweep_runs"
    assert entry["schedule"] == settings.AGENT_RUN_SWEEP_INTERVAL_SECONDS
    settings.AGENT_RUN_STALE_AFTER_SECONDS = 60

    first = running_run(user, age_s=120)
    assert tasks.sweep_runs() == 1  # what beat runs
    second = running_run(user, age_s=120)
    worker_ready.send(sender=None)  # a worker starting
    assert [AgentRun.objects.get(pk=r.pk).status for r in (first, second)] == ["error", "error"]


@pytest.mark.django_db
def test_the_ledger_is_readable_in_admin_and_not_editable(client, superuser, user):
    day = selectors.utc_day_start().date()
    token_usage_settle(user_id=user.pk, day=day, used=1234, release=0)
    client.force_login(superuser)
    page = client.get("/admin/agents/tokenusage/")
    assert page.status_code == HTTPStatus.OK
    assert user.email in page.content.decode()
    assert "1234" in page.content.decode()
    assert client.get("/admin/agents/tokenusage/add/").status_code == HTTPStatus.FORBIDDEN


@pytest.mark.django_db
def test_deleting_a_thread_releases_what_its_pending_runs_reserved(settings, user):
    settings.AGENT_DAILY_TOKEN_BUDGET = 10_000
    settings.AGENT_RUN_TOKEN_RESERVE = 1_000
    thread = AgentThread.objects.create(owner=user, title="queued")
    reserved = token_usage_reserve(user=user)
    AgentRun.objects.create(
        user=user, thread=thread, input="later", status="pending", reserved_tokens=reserved
    )
    assert ledger(user) == (0, 1_000)

    services.thread_delete(thread=thread)

    assert ledger(user) == (0, 0)
