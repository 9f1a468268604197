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
# How often the sweeper runs (Celery beat, and each app server process); 0: only at start.
AGENT_RUN_SWEEP_INTERVAL_SECONDS: float = env.float(
    "AGENT_RUN_SWEEP_INTERVAL_SECONDS", default=300.0
)

# Every app server process sweeps in a background thread (at start, then every interval).
AGENT_RUN_SWEEP_IN_PROCESS: bool = env.bool("AGENT_RUN_SWEEP_IN_PROCESS", default=True)

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
