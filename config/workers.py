"""The gunicorn worker class of the production server (``docker/gunicorn.conf.py``)."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class DjangoUvicornWorker(UvicornWorker):
    """A uvicorn worker without the ASGI lifespan protocol: Django has no lifespan events, and
    probing for them prints "ASGI 'lifespan' protocol appears unsupported" at every start."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {**UvicornWorker.CONFIG_KWARGS, "lifespan": "off"}
