from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save, pre_save


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.models import User
        from accounts.services import first_superuser_ensure_on_migrate
        from accounts.signals import user_credentials_revoke, user_credentials_watch

        post_migrate.connect(first_superuser_ensure_on_migrate, sender=self)
        pre_save.connect(user_credentials_watch, sender=User)
        post_save.connect(user_credentials_revoke, sender=User)
