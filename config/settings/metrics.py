"""Prometheus: who may read ``GET /metrics``, multi-process mode, and the LLM prices.

``METRICS_BEARER_TOKEN`` (empty: no token needed) and ``METRICS_ALLOWED_NETWORKS`` (CIDRs;
empty: any client) protect the endpoint; a refused scrape gets 401 or 403 JSON.

``PROMETHEUS_MULTIPROC_DIR`` switches prometheus_client to multi-process mode: set it in the
server's environment (not only in ``.env``: gunicorn's master reads it too), pointing at a
directory that is emptied before the server starts (``docker/gunicorn.conf.py`` does it).
"""

import ipaddress
import json
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import env

METRICS_ENABLED: bool = env.bool("METRICS_ENABLED", default=True)
METRICS_BEARER_TOKEN: str = env.str("METRICS_BEARER_TOKEN", default="")
METRICS_ALLOWED_NETWORKS: list[str] = [
    n.strip() for n in env.list("METRICS_ALLOWED_NETWORKS", default=[]) if n.strip()
]
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_exc}") from None

PROMETHEUS_MULTIPROC_DIR: str = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    # prometheus_client fails on the first metric if the directory is missing.
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# Price in USD (or any one currency) per 1000 tokens, by model and kind, for the Grafana cost
# panels: exported as agent_model_price_per_1k_tokens{model,kind}. The defaults are list prices
# as of 2025; set your own.
_DEFAULT_LLM_PRICES = {
    "gpt-4o-mini": {"prompt": 0.00015, "completion": 0.0006},
    "gpt-4o": {"prompt": 0.0025, "completion": 0.01},
    "claude-3-5-haiku-latest": {"prompt": 0.0008, "completion": 0.004},
    "offline": {"prompt": 0.0, "completion": 0.0},
}
_LLM_PRICES_HELP = (
    'LLM_PRICES must be JSON like {"gpt-4o-mini": {"prompt": 0.00015, "completion": 0.0006}}: '
    "non-negative prices per 1000 tokens."
)


def _valid_prices(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    for model, prices in value.items():
        if not isinstance(model, str) or not isinstance(prices, dict):
            return False
        if not set(prices) <= {"prompt", "completion"}:
            return False
        for price in prices.values():
            if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                return False
    return True


_prices_json = env.str("LLM_PRICES", default="").strip()  # empty: the defaults
try:
    LLM_PRICES: dict[str, dict[str, float]] = (
        json.loads(_prices_json) if _prices_json else _DEFAULT_LLM_PRICES
    )
except ValueError as _exc:
    raise ImproperlyConfigured(f"{_LLM_PRICES_HELP} ({_exc})") from None
if not _valid_prices(LLM_PRICES):
    raise ImproperlyConfigured(_LLM_PRICES_HELP)
