"""Evaluations: the LLM judge, the evaluator's limits, reports, and where jobs run.

The judge is OpenAI-compatible (``EVALUATION_BASE_URL``, ``EVALUATION_API_KEY``,
``EVALUATION_LLM``); with neither a key nor a base URL it is the offline deterministic judge,
labelled ``offline`` in every score and report. ``evaluations.judge.get_judge()`` is the one
place that reads these.
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, env

EVALUATION_API_KEY: str = env.str("EVALUATION_API_KEY", default="")
EVALUATION_BASE_URL: str = env.str("EVALUATION_BASE_URL", default="")
# The judge model; "offline" (the default without a key or base URL) is the offline judge.
EVALUATION_LLM: str = env.str("EVALUATION_LLM", default="") or (
    "gpt-4o-mini" if (EVALUATION_API_KEY or EVALUATION_BASE_URL) else "offline"
)

# Judge calls in flight at once, and the minimum seconds between two calls' starts (the seed's
# rate limit; 0: no spacing).
EVALUATION_CONCURRENCY: int = env.int("EVALUATION_CONCURRENCY", default=8)
EVALUATION_SLEEP_TIME: float = env.float("EVALUATION_SLEEP_TIME", default=0.0)
# Share of runs judged, decided from the run id (reruns pick the same runs).
EVALUATION_SAMPLE_RATE: float = env.float("EVALUATION_SAMPLE_RATE", default=1.0)
# Per judge call: the request timeout, retries after a 429/5xx/timeout, the longest wait honoured.
EVALUATION_TIMEOUT_SECONDS: float = env.float("EVALUATION_TIMEOUT_SECONDS", default=60.0)
EVALUATION_MAX_RETRIES: int = env.int("EVALUATION_MAX_RETRIES", default=3)
EVALUATION_RETRY_MAX_WAIT: float = env.float("EVALUATION_RETRY_MAX_WAIT", default=60.0)
EVALUATION_TEMPERATURE: float = env.float("EVALUATION_TEMPERATURE", default=0.0)
EVALUATION_MAX_TOKENS: int = env.int("EVALUATION_MAX_TOKENS", default=512)

# The metric prompts: one markdown file per metric (a new file is a new metric).
# Empty (as .env.example has them) means the default; a relative folder is under the project
# root, wherever the command runs from.
EVALUATION_METRICS_DIR: str = str(
    BASE_DIR / (env.str("EVALUATION_METRICS_DIR", default="") or "evaluations/metrics/prompts")
)
EVALUATION_REPORTS_DIR: str = str(
    BASE_DIR / (env.str("EVALUATION_REPORTS_DIR", default="") or "reports")
)
# The owner of the runs `manage.py evaluate --dataset` makes (created on first use).
EVALUATION_DATASET_USER: str = (
    env.str("EVALUATION_DATASET_USER", default="") or "evaluation-dataset@localhost"
)

# Background jobs: EVALUATION_JOBS_BACKEND is decided in config.settings.celery.
# A running job whose heartbeat is older than this (its process died) is marked failed.
EVALUATION_JOB_STALE_SECONDS: int = env.int("EVALUATION_JOB_STALE_SECONDS", default=600)
# Embedded backend: jobs run at once in one process (the rest wait their turn, queued).
EVALUATION_EMBEDDED_WORKERS: int = env.int("EVALUATION_EMBEDDED_WORKERS", default=1)
# Celery beat: evaluate the recent runs every N minutes (0: off).
EVALUATION_SCHEDULE_MINUTES: int = env.int("EVALUATION_SCHEDULE_MINUTES", default=0)

if EVALUATION_CONCURRENCY < 1:
    raise ImproperlyConfigured("EVALUATION_CONCURRENCY must be at least 1.")
if EVALUATION_SLEEP_TIME < 0:
    raise ImproperlyConfigured("EVALUATION_SLEEP_TIME must be 0 or more seconds.")
if not 0.0 <= EVALUATION_SAMPLE_RATE <= 1.0:
    raise ImproperlyConfigured(
        f"EVALUATION_SAMPLE_RATE={EVALUATION_SAMPLE_RATE} is not valid: use 0.0 to 1.0."
    )
if EVALUATION_MAX_RETRIES < 0 or EVALUATION_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured(
        "EVALUATION_MAX_RETRIES must be 0 or more and EVALUATION_TIMEOUT_SECONDS above 0."
    )
if EVALUATION_BASE_URL and not EVALUATION_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"EVALUATION_BASE_URL={EVALUATION_BASE_URL!r} is not valid: use an http(s) URL."
    )
