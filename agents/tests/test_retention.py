"""Retention: ``manage.py prune_threads``, ``agents.retention`` and the daily beat task.

Conversations are made by real runs of the offline model, whose answer quotes the thread's
earlier turns: a kept thread's next answer shows whether its memory survived. The checkpointer
is the configured one (PostgreSQL in the services run, SQLite on the embedded default), and, in
the tests that take the ``saver`` fixture, an explicit saver of each kind (PostgreSQL on one
connection, in the services run only). What is printed and summed is checked against the
checkpointer's tables, read before and after.
"""

from __future__ import annotations

import json
import operator
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from http import HTTPStatus
from io import StringIO
from typing import Annotated, Any, TypedDict

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import UserFactory
from agents import retention, tasks
from agents.checkpointer import get_checkpointer, postgres_conninfo, sqlite_connection
from agents.models import AgentRun, AgentThread, TokenUsage
from agents.runner import agent_run
from config.env import BASE_DIR

THREADS = "/api/v1/agent/threads"
TEAL = "My favourite colour is teal."

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline")]


# -- helpers ---------------------------------------------------------------------------------


def conversation(
    user: User, *messages: str, saver: BaseCheckpointSaver | None = None
) -> AgentThread:
    """A thread with one successful run per message."""
    thread_id = None
    for message in messages:
        run = agent_run(user=user, message=message, thread_id=thread_id, checkpointer=saver)
        assert run.status == AgentRun.Status.SUCCESS, run.error
        thread_id = run.thread_id
    return AgentThread.objects.get(pk=thread_id)


def age(*threads: AgentThread, days: float = 40) -> None:
    """No activity for ``days`` (``update`` leaves ``auto_now`` alone)."""
    when = timezone.now() - timedelta(days=days)
    AgentThread.objects.filter(pk__in=[t.pk for t in threads]).update(updated_at=when)


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_threads", *args, stdout=out)
    return out.getvalue()


_PG_TABLES = {
    "checkpoints": "sum(pg_column_size(checkpoint) + pg_column_size(metadata))",
    "checkpoint_writes": "sum(pg_column_size(blob))",
    "checkpoint_blobs": "sum(coalesce(pg_column_size(blob), 0))",
}
_SQLITE_TABLES = {
    "checkpoints": "sum(length(CAST(checkpoint AS BLOB)) + length(CAST(metadata AS BLOB)))",
    "writes": "sum(length(CAST(value AS BLOB)))",
}


def tables(thread_id: Any, saver: BaseCheckpointSaver | None = None) -> dict[str, list[int]]:
    """``{table: [rows, bytes]}`` of one thread in the checkpointer's tables, read directly."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    saver = saver or get_checkpointer()
    result: dict[str, list[int]] = {}
    if isinstance(saver, SqliteSaver):
        conn = sqlite3.connect(saver.conn.execute("PRAGMA database_list").fetchone()[2])
        try:
            for table, size in _SQLITE_TABLES.items():
                sql = f"SELECT count(*), coalesce({size}, 0) FROM {table} WHERE thread_id = ?"
                result[table] = list(conn.execute(sql, (str(thread_id),)).fetchone())
        finally:
            conn.close()
        return result
    import psycopg

    with psycopg.connect(postgres_conninfo(), autocommit=True) as conn:
        for table, size in _PG_TABLES.items():
            sql = f"SELECT count(*), coalesce({size}, 0) FROM {table} WHERE thread_id = %s"
            row = conn.execute(sql, (str(thread_id),)).fetchone()
            assert row is not None
            result[table] = [int(row[0]), int(row[1])]
    return result


def checkpoint_rows(snapshot: dict[str, list[int]]) -> int:
    return snapshot["checkpoints"][0]


def total_bytes(snapshot: dict[str, list[int]]) -> int:
    return sum(size for _, size in snapshot.values())


def rows_of(snapshot: dict[str, list[int]], *names: str) -> int:
    return sum(snapshot[name][0] for name in names if name in snapshot)


def removed_between(before: dict[str, list[int]], after: dict[str, list[int]]) -> str:
    """What the command prints for a thread, computed from the tables before and after."""
    diff = {
        name: [b - a for b, a in zip(before[name], after[name], strict=True)] for name in before
    }
    writes = rows_of(diff, "writes", "checkpoint_writes")
    blobs = rows_of(diff, "checkpoint_blobs")
    return (
        f"{checkpoint_rows(diff)} checkpoint(s), {writes} write(s), {blobs} blob(s), "
        f"{total_bytes(diff):,} bytes"
    )


def line_of(output: str, thread: AgentThread) -> str:
    lines = [line for line in output.splitlines() if str(thread.pk) in line]
    assert len(lines) == 1, output
    return lines[0]


# -- keep_latest -----------------------------------------------------------------------------


def test_keep_latest_keeps_each_conversation_and_drops_its_history(
    user: User, user_client: APIClient
) -> None:
    old = conversation(user, TEAL, "I live in Lisbon.", "And I like jazz.")
    other = conversation(user, "Remember the number 42.", "Thanks.")
    recent = conversation(user, "A fresh conversation.", "Still fresh.")
    age(old, other)
    messages = {t.pk: user_client.get(f"{THREADS}/{t.pk}").json()["messages"] for t in (old, other)}
    before = {t.pk: tables(t.pk) for t in (old, other, recent)}
    assert checkpoint_rows(before[old.pk]) == 3  # one per run (durability "exit")
    runs = AgentRun.objects.count()

    output = prune("--older-than", "30d", "--strategy", "keep_latest")

    after = {t.pk: tables(t.pk) for t in (old, other, recent)}
    for thread in (old, other):
        assert checkpoint_rows(after[thread.pk]) == 1
        line = line_of(output, thread)
        assert line.startswith(f"pruned thread {thread.pk} ({user.email}, last activity ")
        assert line.endswith(removed_between(before[thread.pk], after[thread.pk]))
        # The conversation is all there, and the history snapshots are gone.
        detail = user_client.get(f"{THREADS}/{thread.pk}").json()
        assert detail["messages"] == messages[thread.pk]
        config = {"configurable": {"thread_id": str(thread.pk), "checkpoint_ns": ""}}
        assert len(list(get_checkpointer().list(config))) == 1
    assert after[recent.pk] == before[recent.pk]
    assert str(recent.pk) not in output
    assert AgentRun.objects.count() == runs
    assert AgentThread.objects.filter(pk__in=[old.pk, other.pk, recent.pk]).count() == 3
    removed_bytes = sum(total_bytes(before[t.pk]) - total_bytes(after[t.pk]) for t in (old, other))
    assert re.search(
        r"^2 thread\(s\) with no activity since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC pruned to "
        r"their latest checkpoint: removed 3 checkpoint\(s\)",
        output,
        re.MULTILINE,
    )
    assert f"{removed_bytes:,} bytes." in output

    # The kept thread answers with its memory: all three earlier turns.
    reply = user_client.post(
        "/api/v1/agent/run", {"message": "What did I tell you?", "thread_id": str(old.pk)}
    )
    assert reply.status_code == HTTPStatus.OK, reply.content
    assert f'Earlier in this conversation you said: "{TEAL}"' in reply.json()["response"]
    assert "(3 earlier messages in total)" in reply.json()["response"]

    # Pruned again: nothing older than the latest checkpoint is left to remove.
    again = prune("--older-than", "30d", "--strategy", "keep_latest", "-v", "2")
    assert f"kept thread {other.pk}" in again
    assert "only its latest checkpoint" in again
    assert "0 thread(s)" in again
    assert "1 thread(s) had nothing but their latest checkpoint." in again
    assert tables(other.pk) == after[other.pk]


def _explicit_saver(kind: str, tmp_path: Any) -> Iterator[BaseCheckpointSaver]:
    if kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite_connection(str(tmp_path / "checkpoints.sqlite3"))
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
        conn.close()
        return
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    with psycopg.connect(
        postgres_conninfo(), autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        yield PostgresSaver(conn)  # one connection, not the pool: the saver's other mode


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def saver(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[BaseCheckpointSaver]:
    if request.param == "postgres" and get_checkpointer().__class__.__name__ != "PostgresSaver":
        pytest.skip("needs the PostgreSQL checkpointer (the services run)")
    yield from _explicit_saver(request.param, tmp_path)


def test_keep_latest_on_each_checkpointer(user: User, saver: BaseCheckpointSaver) -> None:
    thread = conversation(user, TEAL, "I live in Lisbon.", "And I like jazz.", saver=saver)
    age(thread)
    before = tables(thread.pk, saver)
    seen: list[retention.ThreadPruned] = []

    dry = retention.thread_prune_inactive(
        older_than=timedelta(days=30), strategy="keep_latest", dry_run=True, checkpointer=saver
    )
    assert tables(thread.pk, saver) == before
    summary = retention.thread_prune_inactive(
        older_than=timedelta(days=30),
        strategy="keep_latest",
        checkpointer=saver,
        report=seen.append,
    )

    after = tables(thread.pk, saver)
    assert checkpoint_rows(after) == 1
    assert [(t.thread_id, t.outcome) for t in seen] == [(thread.pk, "pruned")]
    assert summary.removed == dry.removed == seen[0].removed
    assert summary.removed.checkpoints == 2
    assert summary.removed.bytes == total_bytes(before) - total_bytes(after) > 0
    assert summary.removed.blobs == rows_of(before, "checkpoint_blobs") - rows_of(
        after, "checkpoint_blobs"
    )
    # The kept checkpoint has no parent left, and the conversation goes on with its memory.
    config = {"configurable": {"thread_id": str(thread.pk), "checkpoint_ns": ""}}
    latest = saver.get_tuple(config)
    assert latest is not None
    assert latest.parent_config is None
    reply = agent_run(
        user=user, message="What did I tell you?", thread_id=thread.pk, checkpointer=saver
    )
    assert f'Earlier in this conversation you said: "{TEAL}"' in reply.response
    assert "(3 earlier messages in total)" in reply.response
    assert len(list(saver.list(config))) == 2


def test_delete_on_each_checkpointer(user: User, saver: BaseCheckpointSaver) -> None:
    thread = conversation(user, TEAL, "Second turn.", saver=saver)
    age(thread)
    before = tables(thread.pk, saver)

    summary = retention.thread_prune_inactive(older_than=timedelta(days=30), checkpointer=saver)

    assert not AgentThread.objects.filter(pk=thread.pk).exists()
    assert all(rows == 0 for rows, _ in tables(thread.pk, saver).values())
    assert (summary.threads, summary.removed.checkpoints) == (1, 2)
    assert summary.removed.bytes == total_bytes(before)


class StepsState(TypedDict):
    fixed: list[str]  # set once: every checkpoint references the same version
    log: Annotated[list[str], operator.add]


def test_keep_latest_keeps_what_the_latest_checkpoint_needs_and_counts_what_goes(
    user: User, saver: BaseCheckpointSaver
) -> None:
    """A graph of LangGraph's own, saved at every step: older checkpoints with pending writes, a
    channel that never changes (the latest checkpoint shares its blob, on PostgreSQL), and a
    failed step whose finished sibling's write the latest checkpoint holds for the resume."""
    calls: list[str] = []
    failing = {"flaky": False}

    def step(name: str) -> Any:
        def run(state: StepsState) -> dict[str, list[str]]:
            calls.append(name)
            if failing.get(name):
                raise RuntimeError(f"{name} failed")
            return {"log": [name]}

        return run

    graph: StateGraph[Any] = StateGraph(StepsState)
    for name in ("first", "second", "flaky"):
        graph.add_node(name, step(name))
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_edge("first", "flaky")
    graph.add_edge(["second", "flaky"], END)
    app = graph.compile(checkpointer=saver)
    thread = AgentThread.objects.create(owner=user, title="steps")
    config: Any = {"configurable": {"thread_id": str(thread.pk)}}
    app.invoke({"fixed": ["set once"], "log": []}, config)
    failing["flaky"] = True
    with pytest.raises(RuntimeError, match="flaky failed"):
        app.invoke({"log": ["again"]}, config)
    age(thread)
    snapshot = app.get_state(config)
    assert snapshot.next == ("flaky",)  # second's write waits in the latest checkpoint
    before = tables(thread.pk, saver)
    assert checkpoint_rows(before) >= 5
    assert rows_of(before, "writes", "checkpoint_writes") > 2

    summary = retention.thread_prune_inactive(
        older_than=timedelta(days=30), strategy="keep_latest", checkpointer=saver
    )

    after = tables(thread.pk, saver)
    assert checkpoint_rows(after) == 1
    assert rows_of(after, "writes", "checkpoint_writes") == 2  # second's write, flaky's error
    removed = summary.removed
    assert removed.checkpoints == checkpoint_rows(before) - 1
    assert removed.writes == rows_of(before, "writes", "checkpoint_writes") - 2
    assert removed.blobs == rows_of(before, "checkpoint_blobs") - rows_of(after, "checkpoint_blobs")
    assert removed.bytes == total_bytes(before) - total_bytes(after) > 0
    assert app.get_state(config).values == snapshot.values
    # The run resumes where it failed: second is not run again, its write was kept.
    failing["flaky"] = False
    calls.clear()
    app.invoke(None, config)
    assert calls == ["flaky"]
    values = app.get_state(config).values
    assert values["fixed"] == ["set once"]
    assert sorted(values["log"]) == sorted(
        ["first", "second", "flaky", "again", "first", "second", "flaky"]
    )


# -- delete ----------------------------------------------------------------------------------


def test_delete_removes_threads_as_the_api_delete_does(user: User, user_client: APIClient) -> None:
    old = conversation(user, TEAL, "I live in Lisbon.")
    by_api = conversation(user, "Delete me through the API.", "Please.")
    kept = conversation(user, "Keep me.", "I am recent.")
    age(old, by_api)
    ledger = list(TokenUsage.objects.filter(user=user).values_list("day", "used", "reserved"))
    assert ledger
    assert ledger[0][1] > 0
    before = tables(old.pk)
    old_runs = list(AgentRun.objects.filter(thread=old).values_list("pk", flat=True))
    assert len(old_runs) == 2

    assert user_client.delete(f"{THREADS}/{by_api.pk}").status_code == HTTPStatus.NO_CONTENT
    output = prune("--older-than", "30d")  # delete: the default strategy

    # The API's delete and the command's leave the same: no thread, no runs, no memory.
    for thread in (old, by_api):
        assert not AgentThread.objects.filter(pk=thread.pk).exists()
        assert not AgentRun.objects.filter(thread_id=thread.pk).exists()
        assert all(rows == 0 for rows, _ in tables(thread.pk).values())
        assert user_client.get(f"{THREADS}/{thread.pk}").status_code == HTTPStatus.NOT_FOUND
    assert user_client.get(f"/api/v1/agent/runs/{old_runs[0]}").status_code == 404
    # The token usage stays on the ledger.
    assert (
        list(TokenUsage.objects.filter(user=user).values_list("day", "used", "reserved")) == ledger
    )
    assert AgentRun.objects.filter(thread=kept).count() == 2
    assert tables(kept.pk)["checkpoints"][0] == 2

    empty = {name: [0, 0] for name in before}
    line = line_of(output, old)
    assert line.startswith(f"deleted thread {old.pk} ({user.email}, last activity ")
    assert line.endswith(removed_between(before, empty))
    assert "1 thread(s) with no activity since" in output
    assert f"deleted: removed {removed_between(before, empty)}." in output

    # The same id again starts from nothing, as after an API delete.
    again = agent_run(user=user, message="What did I tell you?", thread_id=old.pk)
    assert "Earlier in this conversation" not in again.response


def test_zero_days_means_no_activity_since_now(user: User) -> None:
    thread = conversation(user, TEAL)
    assert "1 thread(s)" in prune("--older-than", "0d", "--dry-run")
    prune("--older-than", "0d")
    assert not AgentThread.objects.filter(pk=thread.pk).exists()


# -- dry run, scope, busy threads, batches ---------------------------------------------------


@pytest.mark.parametrize("strategy", ["delete", "keep_latest"])
def test_a_dry_run_changes_nothing_and_prints_what_would_go(user: User, strategy: str) -> None:
    threads = [conversation(user, TEAL, "Second turn.") for _ in range(2)]
    age(*threads)
    before = {t.pk: tables(t.pk) for t in threads}
    runs = sorted(AgentRun.objects.values_list("pk", "status"))

    dry = prune("--older-than", "30d", "--strategy", strategy, "--dry-run")

    assert {t.pk: tables(t.pk) for t in threads} == before
    assert sorted(AgentRun.objects.values_list("pk", "status")) == runs
    assert AgentThread.objects.filter(pk__in=[t.pk for t in threads]).count() == 2
    verb = "would delete" if strategy == "delete" else "would prune"
    assert all(line_of(dry, t).startswith(f"{verb} thread {t.pk}") for t in threads)
    assert dry.splitlines()[-1].startswith("Dry run, nothing changed: 2 thread(s)")

    done = prune("--older-than", "30d", "--strategy", strategy)
    # What the dry run said would go is what went.
    for thread in threads:
        assert line_of(dry, thread).split(": ", 1)[1] == line_of(done, thread).split(": ", 1)[1]
    assert dry.split("removing ")[1] == done.split("removed ")[1]


def test_user_scopes_the_prune_to_one_user(user: User) -> None:
    stranger = UserFactory()
    mine = conversation(user, TEAL)
    theirs = conversation(stranger, TEAL)
    age(mine, theirs)

    output = prune("--older-than", "30d", "--user", f"  {user.email.upper()} ")

    assert f"1 thread(s) of {user.email} with no activity" in output
    assert not AgentThread.objects.filter(pk=mine.pk).exists()
    assert AgentThread.objects.filter(pk=theirs.pk).exists()
    assert checkpoint_rows(tables(theirs.pk)) == 1
    with pytest.raises(CommandError, match=re.escape("no user has the email 'nobody@example.com'")):
        prune("--older-than", "30d", "--user", "nobody@example.com")
    assert AgentThread.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize("strategy", ["delete", "keep_latest"])
@pytest.mark.parametrize("status", ["running", "pending"])
def test_a_thread_with_a_run_in_progress_is_skipped(user: User, strategy: str, status: str) -> None:
    busy = conversation(user, TEAL, "Second turn.")
    idle = conversation(user, TEAL, "Second turn.")
    AgentRun.objects.create(user=user, thread=busy, input="still going", status=status)
    age(busy, idle)
    before = tables(busy.pk)

    output = prune("--older-than", "30d", "--strategy", strategy)

    assert line_of(output, busy).startswith(f"skipped thread {busy.pk} ({user.email}")
    assert line_of(output, busy).endswith(": a run is in progress")
    assert "1 thread(s) skipped (listed above)" in output
    assert "1 thread(s) with no activity" in output  # the idle one
    assert AgentThread.objects.filter(pk=busy.pk).exists()
    assert AgentRun.objects.filter(thread=busy).count() == 3
    assert tables(busy.pk) == before


@pytest.mark.parametrize("meanwhile", ["activity", "run"])
def test_a_thread_that_comes_back_to_life_during_the_prune_is_not_deleted(
    user: User, meanwhile: str
) -> None:
    first = conversation(user, TEAL)
    second = conversation(user, TEAL)
    age(first, days=41)
    age(second, days=40)
    seen: list[retention.ThreadPruned] = []

    def report(outcome: retention.ThreadPruned) -> None:
        seen.append(outcome)
        if outcome.thread_id == first.pk:  # the second is in the same page, not deleted yet
            if meanwhile == "activity":
                AgentThread.objects.filter(pk=second.pk).update(updated_at=timezone.now())
            else:
                AgentRun.objects.create(user=user, thread=second, input="hi", status="running")

    retention.thread_prune_inactive(older_than=timedelta(days=30), report=report)

    reason = retention.NEW_ACTIVITY if meanwhile == "activity" else retention.BUSY
    assert [(t.thread_id, t.outcome, t.reason) for t in seen] == [
        (first.pk, "deleted", ""),
        (second.pk, "skipped", reason),
    ]
    assert AgentThread.objects.filter(pk=second.pk).exists()
    assert checkpoint_rows(tables(second.pk)) == 1


@pytest.mark.parametrize("strategy", ["delete", "keep_latest"])
def test_threads_are_pruned_in_batches(settings: Any, user: User, strategy: str) -> None:
    settings.AGENT_THREAD_RETENTION_BATCH_SIZE = 2
    threads = [conversation(user, f"Thread {n}.", "Second turn.") for n in range(5)]
    age(*threads)  # all at the same moment: the pages go by id within it
    seen: list[retention.ThreadPruned] = []

    summary = retention.thread_prune_inactive(
        older_than=timedelta(days=30), strategy=strategy, report=seen.append
    )

    assert sorted(t.thread_id for t in seen) == sorted(t.pk for t in threads)  # each once
    assert summary.threads == 5
    assert summary.removed.checkpoints == (10 if strategy == "delete" else 5)
    assert all(checkpoint_rows(tables(t.pk)) == (0 if strategy == "delete" else 1) for t in threads)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "--older-than: 'soon' is not a duration"),
        (["--older-than=-1d"], "--older-than: '-1d' is not a usable duration"),
        (["--older-than", "nan"], "'nan' is not a usable duration"),
        ([], "--older-than is required (AGENT_THREAD_RETENTION_DAYS is 0"),
    ],
)
def test_bad_options_are_clear_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as error:
        prune(*args)
    assert message in str(error.value)


def test_without_older_than_the_setting_applies(settings: Any, user: User) -> None:
    settings.AGENT_THREAD_RETENTION_DAYS = 30
    settings.AGENT_THREAD_RETENTION_STRATEGY = "keep_latest"
    thread = conversation(user, TEAL, "Second turn.")
    age(thread, days=31)
    output = prune()
    assert line_of(output, thread).startswith("pruned thread")
    assert checkpoint_rows(tables(thread.pk)) == 1


# -- Celery beat -----------------------------------------------------------------------------


def test_the_beat_task_prunes_with_the_settings(settings: Any, user: User) -> None:
    thread = conversation(user, TEAL, "Second turn.")
    age(thread, days=10)
    settings.AGENT_THREAD_RETENTION_DAYS = 0
    assert tasks.prune_threads() == {}  # 0: keep everything
    settings.AGENT_THREAD_RETENTION_DAYS = 11
    assert tasks.prune_threads()["threads"] == 0  # not old enough
    settings.AGENT_THREAD_RETENTION_DAYS = 7
    settings.AGENT_THREAD_RETENTION_STRATEGY = "keep_latest"
    result = tasks.prune_threads()
    assert (result["strategy"], result["threads"]) == ("keep_latest", 1)
    assert result["removed"]["checkpoints"] == 1
    assert checkpoint_rows(tables(thread.pk)) == 1
    assert tasks.prune_threads.name == "agents.tasks.prune_threads"


def _beat_schedule(**env: str) -> Any:
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.CELERY_BEAT_SCHEDULE))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_THREAD_RETENTION")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result


def test_the_beat_schedule_prunes_daily_only_with_the_setting() -> None:
    for env in ({}, {"AGENT_THREAD_RETENTION_DAYS": "0"}):
        result = _beat_schedule(**env)
        assert result.returncode == 0, result.stderr
        assert "agents-prune-threads" not in json.loads(result.stdout.splitlines()[-1])
    result = _beat_schedule(AGENT_THREAD_RETENTION_DAYS="30")
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout.splitlines()[-1])["agents-prune-threads"]
    assert entry == {"task": "agents.tasks.prune_threads", "schedule": 86400.0}

    bad = _beat_schedule(AGENT_THREAD_RETENTION_STRATEGY="archive")
    assert bad.returncode != 0
    assert "AGENT_THREAD_RETENTION_STRATEGY='archive' is not valid" in bad.stderr
    bad = _beat_schedule(AGENT_THREAD_RETENTION_DAYS="-1")
    assert "AGENT_THREAD_RETENTION_DAYS=-1 is not valid" in bad.stderr


def test_an_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown strategy 'archive'"):
        retention.thread_prune_inactive(older_than=timedelta(days=1), strategy="archive")
