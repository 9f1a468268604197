"""Rate limits (``core.throttles``: django-ratelimit counters on the ``default`` cache) and the
agent's daily token budget.

Limits count in the cache: with Redis (``REDIS_URL``) they hold across every process; with the
in-process cache of the embedded default each process counts on its own.
"""

from config.env import env

RATE_LIMIT_ENABLED: bool = env.bool("RATE_LIMIT_ENABLED", default=True)
# Requests a minute per user on the agent endpoints (run, stream, and later evaluation/feedback).
RATE_LIMIT_PER_MINUTE: int = env.int("RATE_LIMIT_PER_MINUTE", default=60)
# On every login form and endpoint, per client IP and, separately, per account (the email
# tried), as a django-ratelimit rate: "10/m", "100/h", "5/30s".
LOGIN_RATE_LIMIT: str = env.str("LOGIN_RATE_LIMIT", default="10/m")
# Proxies whose X-Forwarded-For names the client (core.http.client_ip, for rate limits and the
# access log): addresses or CIDRs, "*" for any. The same variable uvicorn and gunicorn read.
FORWARDED_ALLOW_IPS: list[str] = env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1", "::1"])
# Cache unreachable: let requests through (with a warning and a metric), or answer 503.
RATE_LIMIT_FAIL_OPEN: bool = env.bool("RATE_LIMIT_FAIL_OPEN", default=True)
# Tokens a user's agent runs may use per UTC day, as the LLM reported them; 0 turns it off.
AGENT_DAILY_TOKEN_BUDGET: int = env.int("AGENT_DAILY_TOKEN_BUDGET", default=0)
# Tokens a run reserves on the day's ledger before it starts (settled to what it used when it
# ends), so that concurrent runs cannot overshoot the budget: about one run's usage.
AGENT_RUN_TOKEN_RESERVE: int = env.int("AGENT_RUN_TOKEN_RESERVE", default=4000)

# django-ratelimit's own settings, derived from the ones above.
RATELIMIT_ENABLE = RATE_LIMIT_ENABLED
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = RATE_LIMIT_FAIL_OPEN
