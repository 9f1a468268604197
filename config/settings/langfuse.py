"""Tracing: Langfuse (Python SDK v5, OpenTelemetry based) and, optionally, LangSmith.

Langfuse is off unless ``LANGFUSE_ENABLED``; then it needs ``LANGFUSE_PUBLIC_KEY`` and
``LANGFUSE_SECRET_KEY``. ``agents.tracing`` is the one place that uses these settings: it
creates the client lazily in each process and exports spans in the background.

LangSmith is LangChain's own tracer: LangChain reads the ``LANGCHAIN_*`` variables from the
process environment itself (the env chain puts ``.env`` values there), so they are exposed here
for ``check``/documentation only, and validated.
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import env

LANGFUSE_ENABLED: bool = env.bool("LANGFUSE_ENABLED", default=False)
LANGFUSE_PUBLIC_KEY: str = env.str("LANGFUSE_PUBLIC_KEY", default="")
LANGFUSE_SECRET_KEY: str = env.str("LANGFUSE_SECRET_KEY", default="")
# The seed calls it LANGFUSE_HOST; SDK v5 calls it LANGFUSE_BASE_URL. HOST wins if both are set.
LANGFUSE_HOST: str = (
    env.str("LANGFUSE_HOST", default="")
    or env.str("LANGFUSE_BASE_URL", default="")
    or "https://cloud.langfuse.com"
).rstrip("/")
# Optional: the project's id, for trace links that go straight to the trace. Without it, links
# use Langfuse's {host}/trace/{id} redirect (finding the id would cost a request per process).
LANGFUSE_PROJECT_ID: str = env.str("LANGFUSE_PROJECT_ID", default="")
# Share of runs traced, 0.0-1.0, decided from the trace id (so the same run always decides alike).
LANGFUSE_SAMPLE_RATE: float = env.float("LANGFUSE_SAMPLE_RATE", default=1.0)
# Seconds one export request to Langfuse may take, retries included; the flush at exit waits at
# most twice this. Exports run on a background thread: a run never waits for Langfuse.
LANGFUSE_TIMEOUT_SECONDS: int = env.int("LANGFUSE_TIMEOUT_SECONDS", default=5)
# Spans per export batch, and seconds between background exports.
LANGFUSE_FLUSH_AT: int = env.int("LANGFUSE_FLUSH_AT", default=512)
LANGFUSE_FLUSH_INTERVAL: float = env.float("LANGFUSE_FLUSH_INTERVAL", default=5.0)
# Whether the SDK scans every span's input and output for media (base64 data URIs, images) to
# upload them as attachments. Runs here carry text only, and the scan walks the whole
# conversation of every span in Python (about 3 % of a run's CPU), so it is off unless set.
LANGFUSE_MEDIA_UPLOAD_ENABLED: bool = env.bool("LANGFUSE_MEDIA_UPLOAD_ENABLED", default=False)
# Tags put on every trace, besides the caller's.
LANGFUSE_TAGS: list[str] = [t.strip() for t in env.list("LANGFUSE_TAGS", default=[]) if t.strip()]

if not 0.0 <= LANGFUSE_SAMPLE_RATE <= 1.0:
    raise ImproperlyConfigured(
        f"LANGFUSE_SAMPLE_RATE={LANGFUSE_SAMPLE_RATE} is not valid: use a number from 0.0 to 1.0."
    )
if LANGFUSE_TIMEOUT_SECONDS < 1:
    raise ImproperlyConfigured("LANGFUSE_TIMEOUT_SECONDS must be at least 1.")
if LANGFUSE_FLUSH_AT < 1 or LANGFUSE_FLUSH_INTERVAL <= 0:
    raise ImproperlyConfigured(
        "LANGFUSE_FLUSH_AT must be at least 1 and LANGFUSE_FLUSH_INTERVAL above 0."
    )
if not LANGFUSE_HOST.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"LANGFUSE_HOST={LANGFUSE_HOST!r} is not valid: use an http(s) URL such as "
        "https://cloud.langfuse.com."
    )
if LANGFUSE_ENABLED and not (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY):
    missing = [
        name
        for name, value in (
            ("LANGFUSE_PUBLIC_KEY", LANGFUSE_PUBLIC_KEY),
            ("LANGFUSE_SECRET_KEY", LANGFUSE_SECRET_KEY),
        )
        if not value
    ]
    raise ImproperlyConfigured(
        f"LANGFUSE_ENABLED is on but {' and '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not set: set the project's API keys "
        "(Langfuse > Project settings > API keys) or turn LANGFUSE_ENABLED off."
    )

# LangSmith (optional, independent of Langfuse). LangChain reads these from os.environ.
LANGCHAIN_TRACING_V2: bool = env.bool("LANGCHAIN_TRACING_V2", default=False)
LANGCHAIN_API_KEY: str = env.str("LANGCHAIN_API_KEY", default="") or env.str(
    "LANGSMITH_API_KEY", default=""
)
LANGCHAIN_PROJECT: str = env.str("LANGCHAIN_PROJECT", default="")
LANGCHAIN_ENDPOINT: str = env.str("LANGCHAIN_ENDPOINT", default="")
if LANGCHAIN_TRACING_V2 and not LANGCHAIN_API_KEY:
    raise ImproperlyConfigured(
        "LANGCHAIN_TRACING_V2 is on but LANGCHAIN_API_KEY is not set: set the LangSmith API key "
        "or turn LANGCHAIN_TRACING_V2 off."
    )
