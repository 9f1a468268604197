from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.services import first_superuser_ensure_on_migrate

        post_migrate.connect(first_superuser_ensure_on_migrate, sender=self)
