"""The agent: limits, memory (the LangGraph checkpointer) and the HTTP tools."""

from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, env

AGENT_MAX_STEPS: int = env.int("AGENT_MAX_STEPS", default=8)
AGENT_MAX_MESSAGE_CHARS: int = env.int("AGENT_MAX_MESSAGE_CHARS", default=16_000)
AGENT_MAX_HISTORY_MESSAGES: int = env.int("AGENT_MAX_HISTORY_MESSAGES", default=40)
AGENT_MAX_METADATA_BYTES: int = env.int("AGENT_MAX_METADATA_BYTES", default=16_384)

# Memory. PostgreSQL databases keep checkpoints in the same database (or
# AGENT_CHECKPOINT_DATABASE_URL); SQLite databases use a SQLite file of their own.
AGENT_CHECKPOINT_DATABASE_URL: str = env.str("AGENT_CHECKPOINT_DATABASE_URL", default="")
AGENT_CHECKPOINT_SQLITE_PATH: str = env.str(
    "AGENT_CHECKPOINT_SQLITE_PATH", default=str(BASE_DIR / "var" / "checkpoints.sqlite3")
)
AGENT_CHECKPOINT_POOL_MIN_SIZE: int = env.int("AGENT_CHECKPOINT_POOL_MIN_SIZE", default=1)
AGENT_CHECKPOINT_POOL_MAX_SIZE: int = env.int("AGENT_CHECKPOINT_POOL_MAX_SIZE", default=10)
AGENT_CHECKPOINT_POOL_MAX_IDLE: float = env.float("AGENT_CHECKPOINT_POOL_MAX_IDLE", default=300.0)
AGENT_CHECKPOINT_POOL_MAX_LIFETIME: float = env.float(
    "AGENT_CHECKPOINT_POOL_MAX_LIFETIME", default=1800.0
)

HTTP_TOOLS_ENABLED: bool = env.bool("HTTP_TOOLS_ENABLED", default=True)
HTTP_TOOL_ALLOWED_HOSTS: list[str] = env.list("HTTP_TOOL_ALLOWED_HOSTS", default=[])
# CIDRs exempted from the private-network block, for intranet APIs. Empty: public internet only.
HTTP_TOOL_ALLOWED_NETWORKS: list[str] = env.list("HTTP_TOOL_ALLOWED_NETWORKS", default=[])
HTTP_TOOL_TIMEOUT_SECONDS: float = env.float("HTTP_TOOL_TIMEOUT_SECONDS", default=10.0)
HTTP_TOOL_MAX_RESPONSE_BYTES: int = env.int("HTTP_TOOL_MAX_RESPONSE_BYTES", default=100_000)

# Seconds between SSE comment lines on an idle stream, so proxies keep the connection open.
AGENT_STREAM_HEARTBEAT_SECONDS: float = env.float("AGENT_STREAM_HEARTBEAT_SECONDS", default=15.0)
AGENT_CHAT_ENABLED: bool = env.bool("AGENT_CHAT_ENABLED", default=True)

# A run's overall deadline: past it the run stops at its next LLM call, streamed token or tool
# and ends as 504 ``run_timeout`` (each LLM request is bounded by LLM_TIMEOUT_SECONDS too).
AGENT_RUN_TIMEOUT_SECONDS: float = env.float("AGENT_RUN_TIMEOUT_SECONDS", default=300.0)
# A run still ``running`` this long after it started was abandoned (its worker died): the
# sweeper (``manage.py sweep_runs``, Celery beat, every app server process) ends it as
# ``error`` with code ``abandoned``. Well above the longest legitimate run.
AGENT_RUN_STALE_AFTER_SECONDS: float = env.float(
    "AGENT_RUN_STALE_AFTER_SECONDS", default=max(3 * AGENT_RUN_TIMEOUT_SECONDS, 600.0)
)
# Approvals: calls to these tools wait for a person's decision (comma-separated; empty: off).
AGENT_APPROVAL_REQUIRED_TOOLS: list[str] = env.list(
    "AGENT_APPROVAL_REQUIRED_TOOLS", default=["http_post"]
)
# An interrupted run not resumed within this many hours is closed as rejected (on the next
# access to it or its thread, and by the periodic sweep); 0: never.
AGENT_APPROVAL_TTL_HOURS: float = env.float("AGENT_APPROVAL_TTL_HOURS", default=24.0)

# Run control: how often a process looks for cancels of the runs it executes, asked from
# another process (a cancel asked in the executing process itself is immediate).
AGENT_RUN_CANCEL_POLL_SECONDS: float = env.float("AGENT_RUN_CANCEL_POLL_SECONDS", default=0.5)
# How long `GET /api/v1/agent/runs/{id}/wait` blocks by default, and at most (`?timeout=`).
AGENT_RUN_WAIT_DEFAULT_SECONDS: float = env.float("AGENT_RUN_WAIT_DEFAULT_SECONDS", default=60.0)
AGENT_RUN_WAIT_MAX_SECONDS: float = env.float("AGENT_RUN_WAIT_MAX_SECONDS", default=300.0)
# How often the sweeper runs (Celery beat, and each app server process); 0: only at start.
AGENT_RUN_SWEEP_INTERVAL_SECONDS: float = env.float(
    "AGENT_RUN_SWEEP_INTERVAL_SECONDS", default=300.0
)

# Every app server process sweeps in a background thread (at start, then every interval).
AGENT_RUN_SWEEP_IN_PROCESS: bool = env.bool("AGENT_RUN_SWEEP_IN_PROCESS", default=True)

# The run event log (agents/eventlog.py): every event a run streams, kept so that a client can
# join the stream later, on any replica (Last-Event-ID). "redis": a Redis stream per run, shared
# by every replica (needs REDIS_URL); "memory": this process only. Empty: redis when REDIS_URL
# is set, else memory.
AGENT_EVENTS_BACKEND: str = env.str("AGENT_EVENTS_BACKEND", default="")
# The newest events kept per run (Redis trims approximately, so at least this many).
AGENT_EVENTS_MAX_PER_RUN: int = env.int("AGENT_EVENTS_MAX_PER_RUN", default=10_000)
# A run's log expires this long after its last event.
AGENT_EVENTS_TTL_SECONDS: int = env.int("AGENT_EVENTS_TTL_SECONDS", default=3600)
# Connect and command timeout of the log's Redis commands (a follow's wait comes on top).
AGENT_EVENTS_REDIS_TIMEOUT_SECONDS: float = env.float(
    "AGENT_EVENTS_REDIS_TIMEOUT_SECONDS", default=2.0
)

# Retention (``manage.py prune_threads``, ``agents.retention``): threads with no activity for
# this many days are pruned daily on Celery beat (``agents-prune-threads``); 0 keeps every
# thread. ``delete`` removes them as ``DELETE agent/threads/{id}`` does; ``keep_latest`` keeps
# each one's latest checkpoint only (the conversation continues, its history snapshots go).
AGENT_THREAD_RETENTION_DAYS: int = env.int("AGENT_THREAD_RETENTION_DAYS", default=0)
AGENT_THREAD_RETENTION_STRATEGY: str = env.str("AGENT_THREAD_RETENTION_STRATEGY", default="delete")
# Threads read, checked and pruned per batch: each thread is pruned in a short transaction of
# its own, so no table stays locked for long.
AGENT_THREAD_RETENTION_BATCH_SIZE: int = env.int("AGENT_THREAD_RETENTION_BATCH_SIZE", default=100)
if AGENT_THREAD_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        f"AGENT_THREAD_RETENTION_DAYS={AGENT_THREAD_RETENTION_DAYS} is not valid: use 0 (keep "
        "every thread) or a number of days."
    )
if AGENT_THREAD_RETENTION_STRATEGY not in ("delete", "keep_latest"):
    raise ImproperlyConfigured(
        f"AGENT_THREAD_RETENTION_STRATEGY={AGENT_THREAD_RETENTION_STRATEGY!r} is not valid: use "
        "delete or keep_latest."
    )
if not 1 <= AGENT_THREAD_RETENTION_BATCH_SIZE <= 1000:
    raise ImproperlyConfigured(
        f"AGENT_THREAD_RETENTION_BATCH_SIZE={AGENT_THREAD_RETENTION_BATCH_SIZE} is not valid: "
        "use 1 to 1000."
    )
