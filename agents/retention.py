"""Thread retention: prune the threads that had no activity since a cutoff, in batches.

``thread_prune_inactive`` is what ``manage.py prune_threads`` and the daily Celery beat task
(``agents.tasks.prune_threads``, when ``AGENT_THREAD_RETENTION_DAYS`` is above 0) call. A
thread's activity is its ``updated_at``, which every run start bumps. Two strategies:

- ``delete``: each thread goes exactly as ``DELETE /api/v1/agent/threads/{id}`` removes it
  (``services.thread_delete``: the thread, its runs, and its memory through ``agents.signals``);
  the token ledger keeps the day's usage.
- ``keep_latest``: the thread and its runs stay; its memory keeps only the latest checkpoint of
  each namespace, the one the next run loads, with its pending writes and (PostgreSQL) the blobs
  it references. The conversation continues with its memory; the history snapshots go.
  PostgreSQL: ``PostgresSaver.prune`` (langgraph-checkpoint-postgres). The SQLite saver has no
  ``prune``, so ``_SqliteMemory`` applies the same rule in SQL.

A thread with a run in progress is skipped, and reported. Threads are read oldest first in pages
of ``AGENT_THREAD_RETENTION_BATCH_SIZE``; each one is deleted or pruned in a short transaction of
its own, so no table stays locked for long. What goes is measured before it goes: checkpoints,
pending writes, blobs (PostgreSQL keeps channel values in blobs; SQLite inside the checkpoint)
and their stored bytes (PostgreSQL: ``pg_column_size``, after compression; the tables' files
shrink only with ``VACUUM FULL``, the space is reused before that).
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from langgraph.checkpoint.base import BaseCheckpointSaver

from accounts.models import User
from agents import services
from agents.checkpointer import get_checkpointer
from agents.models import AgentRun, AgentThread

logger = logging.getLogger(__name__)

STRATEGIES = ("delete", "keep_latest")
# The statuses of a run in progress: a thread with one is never pruned.
ACTIVE_STATUSES = AgentRun.ACTIVE

BUSY = "a run is in progress"
NEW_ACTIVITY = "it had new activity meanwhile"
DELTA_CHANNEL = "its memory uses a DeltaChannel, which keep_latest cannot prune"
CHANGED = "its memory changed while it was pruned (the next prune takes it)"


@dataclass
class Removed:
    """What pruning removes from a thread's memory (or from every thread's, summed)."""

    checkpoints: int = 0
    writes: int = 0
    blobs: int = 0
    bytes: int = 0

    def add(self, other: Removed) -> None:
        self.checkpoints += other.checkpoints
        self.writes += other.writes
        self.blobs += other.blobs
        self.bytes += other.bytes


@dataclass(frozen=True)
class ThreadPruned:
    """One thread's outcome: ``deleted``, ``pruned``, ``skipped`` (``reason``) or ``unchanged``
    (keep_latest: nothing but the latest checkpoint to begin with). On a dry run, what would
    happen."""

    thread_id: uuid.UUID
    owner_email: str
    updated_at: datetime
    outcome: str
    removed: Removed = field(default_factory=Removed)
    reason: str = ""


@dataclass
class PruneSummary:
    strategy: str
    cutoff: datetime
    dry_run: bool
    threads: int = 0  # deleted or pruned (on a dry run: would be)
    skipped: int = 0
    unchanged: int = 0
    removed: Removed = field(default_factory=Removed)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cutoff": self.cutoff.isoformat()}


def thread_prune_inactive(
    *,
    older_than: timedelta,
    strategy: str = "delete",
    dry_run: bool = False,
    user: User | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    report: Callable[[ThreadPruned], None] | None = None,
) -> PruneSummary:
    """Delete (or prune to their latest checkpoint) the threads with no activity in the last
    ``older_than`` (``0``: none since now), of ``user`` or of everyone.

    ``report`` is called with each thread's outcome as it happens; ``dry_run`` changes nothing
    and reports what would go. ``checkpointer`` replaces the configured one (tests).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}: use delete or keep_latest.")
    cutoff = timezone.now() - older_than
    saver = checkpointer or get_checkpointer()
    memory = _memory_for(saver)
    summary = PruneSummary(strategy=strategy, cutoff=cutoff, dry_run=dry_run)
    for page in _inactive_threads(cutoff=cutoff, user=user):
        busy = set(
            AgentRun.objects.filter(
                thread_id__in=[t.id for t in page], status__in=ACTIVE_STATUSES
            ).values_list("thread_id", flat=True)
        )
        planned = memory.plan([str(t.id) for t in page if t.id not in busy], strategy=strategy)
        for thread in page:
            removed = planned.get(str(thread.id), Removed())
            outcome: ThreadPruned | None
            if thread.id in busy:
                outcome = thread.outcome("skipped", reason=BUSY)
            elif strategy == "delete":
                outcome = _delete(thread, removed, cutoff=cutoff, dry_run=dry_run, saver=saver)
            else:
                outcome = _keep_latest(thread, removed, dry_run=dry_run, memory=memory)
            if outcome is None:  # deleted by someone else meanwhile
                continue
            if outcome.outcome == "skipped":
                summary.skipped += 1
            elif outcome.outcome == "unchanged":
                summary.unchanged += 1
            else:
                summary.threads += 1
                summary.removed.add(outcome.removed)
            if report is not None:
                report(outcome)
    return summary


@dataclass(frozen=True)
class _Inactive:
    id: uuid.UUID
    owner_email: str
    updated_at: datetime

    def outcome(
        self, outcome: str, *, removed: Removed | None = None, reason: str = ""
    ) -> ThreadPruned:
        return ThreadPruned(
            thread_id=self.id,
            owner_email=self.owner_email,
            updated_at=self.updated_at,
            outcome=outcome,
            removed=removed or Removed(),
            reason=reason,
        )


def _inactive_threads(*, cutoff: datetime, user: User | None) -> Iterator[list[_Inactive]]:
    """Pages of the threads last active at or before ``cutoff``, oldest first (keyset paging:
    each page is one short indexed query, whatever happened to the pages before)."""
    size = int(settings.AGENT_THREAD_RETENTION_BATCH_SIZE)
    threads = AgentThread.objects.filter(updated_at__lte=cutoff)
    if user is not None:
        threads = threads.filter(owner=user)
    rows = threads.order_by("updated_at", "id").values_list("id", "owner__email", "updated_at")
    after: _Inactive | None = None
    while True:
        page_rows = rows
        if after is not None:
            page_rows = rows.filter(
                Q(updated_at__gt=after.updated_at) | Q(updated_at=after.updated_at, id__gt=after.id)
            )
        page = [_Inactive(*row) for row in page_rows[:size]]
        if page:
            yield page
        if len(page) < size:
            return
        after = page[-1]


def _delete(
    inactive: _Inactive,
    removed: Removed,
    *,
    cutoff: datetime,
    dry_run: bool,
    saver: BaseCheckpointSaver,
) -> ThreadPruned | None:
    if dry_run:
        return inactive.outcome("deleted", removed=removed)
    with transaction.atomic():
        # Locked, then checked again: a run starting now waits for this transaction (its row
        # references the thread), then finds the thread gone, as after an API delete.
        thread = AgentThread.objects.select_for_update().filter(pk=inactive.id).first()
        if thread is None:
            return None
        if thread.updated_at > cutoff:
            return inactive.outcome("skipped", reason=NEW_ACTIVITY)
        if AgentRun.objects.filter(thread=thread, status__in=ACTIVE_STATUSES).exists():
            return inactive.outcome("skipped", reason=BUSY)
        services.thread_delete(thread=thread)
    if saver is not get_checkpointer():  # a checkpointer of the caller's: not the signal's
        saver.delete_thread(str(inactive.id))
    return inactive.outcome("deleted", removed=removed)


def _keep_latest(
    inactive: _Inactive, removed: Removed, *, dry_run: bool, memory: _Memory
) -> ThreadPruned:
    if not removed.checkpoints:
        return inactive.outcome("unchanged")
    if dry_run:
        return inactive.outcome("pruned", removed=removed)
    try:
        done = memory.keep_latest(str(inactive.id), planned=removed)
    except NotImplementedError:  # PostgresSaver.prune refuses DeltaChannel threads
        return inactive.outcome("skipped", reason=DELTA_CHANNEL)
    except memory.conflicts as exc:
        logger.warning("Thread %s changed while it was pruned: %s", inactive.id, exc)
        return inactive.outcome("skipped", reason=CHANGED)
    return inactive.outcome("pruned" if done.checkpoints else "unchanged", removed=done)


# -- the checkpointers' tables ----------------------------------------------------------------


class _Memory:
    """Sizes and keep_latest on one checkpointer's tables."""

    conflicts: tuple[type[Exception], ...] = ()

    def plan(self, thread_ids: list[str], *, strategy: str) -> dict[str, Removed]:
        """What ``strategy`` removes from each thread's memory (threads with none: absent)."""
        raise NotImplementedError

    def keep_latest(self, thread_id: str, *, planned: Removed) -> Removed:
        """Prune one thread to its latest checkpoints; what was removed."""
        raise NotImplementedError


def _memory_for(saver: BaseCheckpointSaver) -> _Memory:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    if isinstance(saver, SqliteSaver):
        return _SqliteMemory(saver)
    if isinstance(saver, PostgresSaver):
        return _PostgresMemory(saver)
    raise TypeError(f"Thread retention does not know the tables of {type(saver).__name__}.")


def _tally(rows: list[tuple[str, str, int, int]]) -> dict[str, Removed]:
    """``(thread_id, kind, count, bytes)`` rows by thread."""
    plan: dict[str, Removed] = {}
    for thread_id, kind, count, size in rows:
        removed = plan.setdefault(thread_id, Removed())
        setattr(removed, kind, getattr(removed, kind) + int(count))
        removed.bytes += int(size or 0)
    return plan


# PostgreSQL: checkpoints (channel values inline when primitive), checkpoint_blobs (the rest, by
# channel version) and checkpoint_writes (pending writes, by checkpoint).
_PG_ALL_SQL = """
SELECT thread_id, 'checkpoints', count(*),
       sum(pg_column_size(checkpoint) + pg_column_size(metadata))
FROM checkpoints WHERE thread_id = ANY(%(ids)s) GROUP BY thread_id
UNION ALL
SELECT thread_id, 'writes', count(*), sum(pg_column_size(blob))
FROM checkpoint_writes WHERE thread_id = ANY(%(ids)s) GROUP BY thread_id
UNION ALL
SELECT thread_id, 'blobs', count(*), sum(coalesce(pg_column_size(blob), 0))
FROM checkpoint_blobs WHERE thread_id = ANY(%(ids)s) GROUP BY thread_id
"""

# What PostgresSaver.prune(strategy="keep_latest") deletes, for graphs without subgraphs and
# with checkpoints of format v4 (this agent's): every checkpoint but each namespace's latest,
# their pending writes, and the blobs they reference that the latest one does not.
_PG_KEEP_LATEST_SQL = """
WITH heads AS (
    SELECT DISTINCT ON (thread_id, checkpoint_ns) thread_id, checkpoint_ns, checkpoint_id
    FROM checkpoints WHERE thread_id = ANY(%(ids)s)
    ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
), old AS (
    SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.checkpoint, c.metadata
    FROM checkpoints c
    WHERE c.thread_id = ANY(%(ids)s) AND NOT EXISTS (
        SELECT 1 FROM heads h
        WHERE h.thread_id = c.thread_id AND h.checkpoint_ns = c.checkpoint_ns
        AND h.checkpoint_id = c.checkpoint_id
    )
), freed AS (
    SELECT o.thread_id, o.checkpoint_ns, v.key AS channel, v.value AS version
    FROM old o CROSS JOIN LATERAL jsonb_each_text(o.checkpoint -> 'channel_versions') AS v
    EXCEPT
    SELECT c.thread_id, c.checkpoint_ns, v.key, v.value
    FROM heads h
    JOIN checkpoints c ON c.thread_id = h.thread_id AND c.checkpoint_ns = h.checkpoint_ns
        AND c.checkpoint_id = h.checkpoint_id
    CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
)
SELECT thread_id, 'checkpoints', count(*),
       sum(pg_column_size(checkpoint) + pg_column_size(metadata))
FROM old GROUP BY thread_id
UNION ALL
SELECT w.thread_id, 'writes', count(*), sum(pg_column_size(w.blob))
FROM checkpoint_writes w
JOIN old o ON o.thread_id = w.thread_id AND o.checkpoint_ns = w.checkpoint_ns
    AND o.checkpoint_id = w.checkpoint_id
GROUP BY w.thread_id
UNION ALL
SELECT b.thread_id, 'blobs', count(*), sum(coalesce(pg_column_size(b.blob), 0))
FROM checkpoint_blobs b
JOIN freed f ON f.thread_id = b.thread_id AND f.checkpoint_ns = b.checkpoint_ns
    AND f.channel = b.channel AND f.version = b.version
GROUP BY b.thread_id
"""


class _PostgresMemory(_Memory):
    def __init__(self, saver: Any) -> None:
        from psycopg import errors

        self.saver = saver
        self.conflicts = (errors.SerializationFailure, errors.DeadlockDetected)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        from psycopg import Connection

        conn = self.saver.conn
        if isinstance(conn, Connection):
            with self.saver.lock:
                yield conn
        else:
            with conn.connection() as pooled:
                yield pooled

    def plan(self, thread_ids: list[str], *, strategy: str) -> dict[str, Removed]:
        from psycopg.rows import tuple_row

        if not thread_ids:
            return {}
        sql = _PG_ALL_SQL if strategy == "delete" else _PG_KEEP_LATEST_SQL
        with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(sql, {"ids": thread_ids}, prepare=False)
            return _tally(cur.fetchall())

    def keep_latest(self, thread_id: str, *, planned: Removed) -> Removed:
        # One thread per call: its own transaction, on one snapshot of the thread, so a run
        # appending to it meanwhile keeps what it writes.
        self.saver.prune([thread_id], strategy="keep_latest")
        return planned


# SQLite: checkpoints (every channel value inside the checkpoint) and writes.
_SQLITE_ALL_SQL = (
    """SELECT 'checkpoints', count(*), sum(coalesce(length(CAST(checkpoint AS BLOB)), 0)
        + coalesce(length(CAST(metadata AS BLOB)), 0))
    FROM checkpoints WHERE thread_id = :t""",
    """SELECT 'writes', count(*), sum(coalesce(length(CAST(value AS BLOB)), 0))
    FROM writes WHERE thread_id = :t""",
)
# Every checkpoint but each namespace's latest (the one get_tuple loads), and their writes.
_SQLITE_KEEP_LATEST_SQL = (
    """SELECT 'checkpoints', count(*), sum(coalesce(length(CAST(checkpoint AS BLOB)), 0)
        + coalesce(length(CAST(metadata AS BLOB)), 0))
    FROM checkpoints c WHERE c.thread_id = :t AND c.checkpoint_id < (
        SELECT max(m.checkpoint_id) FROM checkpoints m
        WHERE m.thread_id = c.thread_id AND m.checkpoint_ns = c.checkpoint_ns
    )""",
    """SELECT 'writes', count(*), sum(coalesce(length(CAST(value AS BLOB)), 0))
    FROM writes w WHERE w.thread_id = :t AND EXISTS (
        SELECT 1 FROM checkpoints c
        WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
        AND c.checkpoint_id = w.checkpoint_id AND c.checkpoint_id < (
            SELECT max(m.checkpoint_id) FROM checkpoints m
            WHERE m.thread_id = c.thread_id AND m.checkpoint_ns = c.checkpoint_ns
        )
    )""",
)
# Writes first: they go by the checkpoints deleted (a run can save writes before their
# checkpoint, and those stay). The kept checkpoints' parents are gone: none, as PostgresSaver
# leaves them.
_SQLITE_PRUNE_SQL = (
    """DELETE FROM writes WHERE thread_id = :t AND EXISTS (
        SELECT 1 FROM checkpoints c
        WHERE c.thread_id = writes.thread_id AND c.checkpoint_ns = writes.checkpoint_ns
        AND c.checkpoint_id = writes.checkpoint_id AND c.checkpoint_id < (
            SELECT max(m.checkpoint_id) FROM checkpoints m
            WHERE m.thread_id = c.thread_id AND m.checkpoint_ns = c.checkpoint_ns
        )
    )""",
    """DELETE FROM checkpoints WHERE thread_id = :t AND checkpoint_id < (
        SELECT max(m.checkpoint_id) FROM checkpoints m
        WHERE m.thread_id = checkpoints.thread_id AND m.checkpoint_ns = checkpoints.checkpoint_ns
    )""",
    """UPDATE checkpoints SET parent_checkpoint_id = NULL
    WHERE thread_id = :t AND parent_checkpoint_id IS NOT NULL AND parent_checkpoint_id NOT IN (
        SELECT p.checkpoint_id FROM checkpoints p
        WHERE p.thread_id = checkpoints.thread_id AND p.checkpoint_ns = checkpoints.checkpoint_ns
    )""",
)


class _SqliteMemory(_Memory):
    def __init__(self, saver: Any) -> None:
        self.saver = saver

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Cursor]:
        """A transaction on the saver's connection, under its lock: ``BEGIN IMMEDIATE`` takes
        the database's write lock at once, so what is measured is what is deleted."""
        with self.saver.lock:
            self.saver.setup()
            conn: sqlite3.Connection = self.saver.conn
            cur = conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cur
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                cur.close()

    @staticmethod
    def _measure(cur: sqlite3.Cursor, thread_id: str, statements: tuple[str, ...]) -> Removed:
        return _tally(
            [(thread_id, *cur.execute(sql, {"t": thread_id}).fetchone()) for sql in statements]
        ).get(thread_id, Removed())

    def plan(self, thread_ids: list[str], *, strategy: str) -> dict[str, Removed]:
        statements = _SQLITE_ALL_SQL if strategy == "delete" else _SQLITE_KEEP_LATEST_SQL
        plan: dict[str, Removed] = {}
        with self._transaction(write=False) as cur:
            for thread_id in thread_ids:
                removed = self._measure(cur, thread_id, statements)
                if removed.checkpoints or removed.writes:
                    plan[thread_id] = removed
        return plan

    def keep_latest(self, thread_id: str, *, planned: Removed) -> Removed:
        with self._transaction(write=True) as cur:
            removed = self._measure(cur, thread_id, _SQLITE_KEEP_LATEST_SQL)
            for sql in _SQLITE_PRUNE_SQL:
                cur.execute(sql, {"t": thread_id})
        return removed
