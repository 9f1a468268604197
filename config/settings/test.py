"""The test suite: like local, but fast and quiet. PostgreSQL/Redis come from the environment."""

from config.env import BASE_DIR, env
from config.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = SECRET_KEY or "test-only-secret-key-that-is-long-enough-for-hmac-signing-1234567890"  # noqa: F405
ALLOWED_HOSTS = ["*"]
FIRST_SUPERUSER = FIRST_SUPERUSER or "admin@example.com"  # noqa: F405
FIRST_SUPERUSER_PASSWORD = FIRST_SUPERUSER_PASSWORD or "changethis"  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"].endswith(".sqlite3"):  # noqa: F405  (django-prometheus's too)
    # A file, not :memory:, so that server processes started by the tests can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test-db.sqlite3")}  # noqa: F405
    (BASE_DIR / "var").mkdir(exist_ok=True)
STATIC_ROOT.mkdir(exist_ok=True)  # noqa: F405  (WhiteNoise warns about a missing STATIC_ROOT)

# Tests choose their model explicitly; the default is the offline one, without demo delays.
OFFLINE_MODEL_STREAM_DELAY = 0.0
AGENT_CHECKPOINT_SQLITE_PATH = str(BASE_DIR / "var" / "test-checkpoints.sqlite3")

# Limits stay on, high enough for the rest of the suite; core/tests/test_throttles.py lowers
# them (in process, and through the environment for the servers it starts).
RATE_LIMIT_PER_MINUTE = env.int("RATE_LIMIT_PER_MINUTE", default=10_000)
LOGIN_RATE_LIMIT = env.str("LOGIN_RATE_LIMIT", default="10000/m")

# Tests trace only where a test asks for it, whatever a developer's .env says.
LANGFUSE_ENABLED = env.bool("TEST_LANGFUSE_ENABLED", default=False)

# Evaluation jobs run in the test process unless a test asks for a Celery worker; the judge is
# the offline one unless a test points it at a judge server.
EVALUATION_JOBS_BACKEND = env.str("EVALUATION_JOBS_BACKEND", default="embedded")
AGENT_RUNS_BACKEND = env.str("AGENT_RUNS_BACKEND", default="embedded")
EVALUATION_API_KEY = env.str("TEST_EVALUATION_API_KEY", default="")
EVALUATION_BASE_URL = env.str("TEST_EVALUATION_BASE_URL", default="")
if not (EVALUATION_API_KEY or EVALUATION_BASE_URL):
    EVALUATION_LLM = "offline"
EVALUATION_REPORTS_DIR = str(BASE_DIR / "var" / "test-reports")
# Sweeping stale runs in the background only in the servers a test starts for it.
AGENT_RUN_SWEEP_IN_PROCESS = env.bool("AGENT_RUN_SWEEP_IN_PROCESS", default=False)
