"""Celery (background runs and evaluation jobs): Redis as the broker, state in the database.

``celery -A config worker`` runs them; ``celery -A config beat`` the schedule. Without a broker
(the embedded default) they run in the web process and Celery is not used.
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import env
from config.settings.agent import AGENT_RUN_SWEEP_INTERVAL_SECONDS, AGENT_THREAD_RETENTION_DAYS
from config.settings.cache import REDIS_URL
from config.settings.evaluation import EVALUATION_SCHEDULE_MINUTES

CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default="") or REDIS_URL
CELERY_TASK_DEFAULT_QUEUE: str = env.str("CELERY_TASK_DEFAULT_QUEUE", default="agents")
# Job state and reports live in the database: no result backend.
CELERY_TASK_IGNORE_RESULT = True
# A job whose worker died is delivered again, and resumes (the evaluator is idempotent).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"
# The worker logs as the app does (config.settings.logging: JSON lines with the run, thread and
# trace ids of background runs), not in Celery's own format without them.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Runs left `running` by a process that died end as `abandoned` (agents.sweeper).
    "agents-sweep-runs": {
        "task": "agents.tasks.sweep_runs",
        "schedule": AGENT_RUN_SWEEP_INTERVAL_SECONDS or 300.0,
    },
    "evaluations-fail-stale-jobs": {"task": "evaluations.fail_stale_jobs", "schedule": 300.0},
}
if AGENT_THREAD_RETENTION_DAYS > 0:
    # Threads inactive for AGENT_THREAD_RETENTION_DAYS are pruned once a day (agents.retention).
    CELERY_BEAT_SCHEDULE["agents-prune-threads"] = {
        "task": "agents.tasks.prune_threads",
        "schedule": 24 * 3600.0,
    }
if EVALUATION_SCHEDULE_MINUTES > 0:
    CELERY_BEAT_SCHEDULE["evaluations-recent-runs"] = {
        "task": "evaluations.evaluate_recent",
        "schedule": EVALUATION_SCHEDULE_MINUTES * 60.0,
    }

# Where evaluation jobs (the API, the admin action) run: "celery" (a worker on the broker) or
# "embedded" (a thread pool in the web process). Default: celery when there is a broker.
EVALUATION_JOBS_BACKEND: str = env.str("EVALUATION_JOBS_BACKEND", default="") or (
    "celery" if CELERY_BROKER_URL else "embedded"
)
if EVALUATION_JOBS_BACKEND not in ("celery", "embedded"):
    raise ImproperlyConfigured(
        f"EVALUATION_JOBS_BACKEND={EVALUATION_JOBS_BACKEND!r} is not valid: use celery or embedded."
    )
if EVALUATION_JOBS_BACKEND == "celery" and not CELERY_BROKER_URL:
    raise ImproperlyConfigured(
        "EVALUATION_JOBS_BACKEND=celery needs CELERY_BROKER_URL (or REDIS_URL)."
    )

# Where background runs (`POST /api/v1/agent/runs`, runs queued behind a busy thread, streams
# with on_disconnect=continue) execute: "celery" (a worker on the broker) or "embedded" (a
# thread pool in the web process, AGENT_RUNS_EMBEDDED_WORKERS threads). Default: celery when
# there is a broker.
AGENT_RUNS_BACKEND: str = env.str("AGENT_RUNS_BACKEND", default="") or (
    "celery" if CELERY_BROKER_URL else "embedded"
)
if AGENT_RUNS_BACKEND not in ("celery", "embedded"):
    raise ImproperlyConfigured(
        f"AGENT_RUNS_BACKEND={AGENT_RUNS_BACKEND!r} is not valid: use celery or embedded."
    )
if AGENT_RUNS_BACKEND == "celery" and not CELERY_BROKER_URL:
    raise ImproperlyConfigured("AGENT_RUNS_BACKEND=celery needs CELERY_BROKER_URL (or REDIS_URL).")
AGENT_RUNS_EMBEDDED_WORKERS: int = env.int("AGENT_RUNS_EMBEDDED_WORKERS", default=8)

# The worker's pool (`celery -A config worker` without --pool/--concurrency): threads, as many
# as the runs one worker process executes at once. Agent runs wait on the model for nearly all
# of their time, so a thread each is enough, in one process with one set of connection pools
# (docs/deployment.md, "The Celery worker"). prefork or solo where that does not fit. Set the
# pool here, not with `--pool prefork`: Celery takes that for its default and uses this.
CELERY_WORKER_POOL: str = env.str("CELERY_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY: int = env.int("CELERY_WORKER_CONCURRENCY", default=16)
if CELERY_WORKER_POOL not in ("threads", "prefork", "solo"):
    raise ImproperlyConfigured(
        f"CELERY_WORKER_POOL={CELERY_WORKER_POOL!r} is not valid: use threads, prefork or solo."
    )
if CELERY_WORKER_CONCURRENCY < 1:
    raise ImproperlyConfigured(
        f"CELERY_WORKER_CONCURRENCY={CELERY_WORKER_CONCURRENCY} must be at least 1."
    )

# The worker's own Prometheus endpoint (its judge calls and scores; the backend's /metrics only
# sees its own processes): `celery -A config worker` serves http://HOST:PORT/metrics when PORT
# is set (0: off). It has no token: bind it to an address only Prometheus reaches.
WORKER_METRICS_PORT: int = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_HOST: str = env.str("WORKER_METRICS_HOST", default="") or "127.0.0.1"
if not 0 <= WORKER_METRICS_PORT <= 65535:
    raise ImproperlyConfigured(f"WORKER_METRICS_PORT={WORKER_METRICS_PORT} is not a port.")
