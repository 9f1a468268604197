"""Cache: Redis (django-redis) when REDIS_URL or REDIS_HOST is set, else in-process."""

from urllib.parse import quote

from config.env import env

REDIS_URL: str = env.str("REDIS_URL", default="")
if not REDIS_URL and env.str("REDIS_HOST", default=""):
    _password = env.str("REDIS_PASSWORD", default="")
    _auth = f":{quote(_password, safe='')}@" if _password else ""
    REDIS_URL = (
        f"redis://{_auth}{env.str('REDIS_HOST')}:{env.int('REDIS_PORT', default=6379)}"
        f"/{env.int('REDIS_DB', default=0)}"
    )

CACHE_KEY_PREFIX: str = env.str("CACHE_KEY_PREFIX", default="agents")

if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis, with django-prometheus's get/hit/miss counters.
            "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Fail fast: a Redis outage must not hang requests (readyz, rate limits).
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=2.0),
                "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=2.0),
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache",
            "LOCATION": "agents-default",
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
