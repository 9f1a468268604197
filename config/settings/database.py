"""Database: ``DATABASE_URL`` when set, else a SQLite file under ``var/`` (the embedded default)."""

from config.env import BASE_DIR, env

_default_sqlite = BASE_DIR / "var" / "db.sqlite3"

# An empty DATABASE_URL means "not set", so `DATABASE_URL= make ...` picks the embedded default.
DATABASE_URL: str = env.str("DATABASE_URL", default="") or f"sqlite:///{_default_sqlite}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
_db = DATABASES["default"]

if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] == str(_default_sqlite):
        _default_sqlite.parent.mkdir(exist_ok=True)
    _db.setdefault("OPTIONS", {}).update(
        {
            # WAL lets readers and one writer work at once; IMMEDIATE avoids lock upgrades
            # failing mid-transaction when the ASGI server runs requests in threads.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    _options = _db.setdefault("OPTIONS", {})
    _options.setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
    if env.bool("DATABASE_POOL", default=True):
        # Under ASGI every request in flight holds a connection; a bounded pool per process
        # makes a burst wait for a connection instead of exhausting the server's
        # max_connections. Pooling and persistent connections exclude each other.
        _options["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
            "name": "django-default",  # in psycopg.pool's log lines
        }
        _db["CONN_MAX_AGE"] = 0
        # Our backend (core.postgresql) checks every connection it takes from the pool: when
        # the server has closed the idle ones (a restart, a failover, pg_terminate_backend, an
        # idle timeout), the first dead one makes the pool drop them all at once and the
        # checkout is retried, instead of failing a request. CONN_HEALTH_CHECKS would give the
        # pool psycopg_pool's own check, which backs off between dead connections (0, 1, 2,
        # 4 s...) until DATABASE_POOL_TIMEOUT runs out.
        _db["CONN_HEALTH_CHECKS"] = False
    else:
        _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        _db["CONN_HEALTH_CHECKS"] = True

# django-prometheus's wrappers of the same backends count queries, errors and connections
# (core.postgresql is its PostgreSQL wrapper, with the pool checkout above).
_ENGINES = {
    "django.db.backends.postgresql": "core.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
_db["ENGINE"] = _ENGINES.get(_db["ENGINE"], _db["ENGINE"])
