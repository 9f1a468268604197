"""PostgreSQL: the project's database backend (``ENGINE = "core.postgresql"``, in ``base``) and
the pool checkout that Django's pool and the checkpointer's share (``pool``)."""
