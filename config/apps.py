from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The project package as an app, only to register the startup checks (config.checks)."""

    name = "config"
    verbose_name = "Configuration"

    def ready(self) -> None:
        from config import checks

        checks.register()
