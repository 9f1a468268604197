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
    _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
