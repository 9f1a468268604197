from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: the domain error base, the API's exception handler, pagination,
    routers and rate-limit throttles. No models."""

    name = "core"
    verbose_name = "Core"
