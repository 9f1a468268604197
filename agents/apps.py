from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, pre_delete


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agents.checkpointer import setup_checkpoint_tables_on_migrate

        post_migrate.connect(setup_checkpoint_tables_on_migrate, sender=self)

        from agents import signals
        from agents.models import AgentThread

        post_delete.connect(
            signals.thread_memory_forget, sender=AgentThread, dispatch_uid="agents.thread_memory"
        )
        pre_delete.connect(
            signals.thread_pending_runs_release,
            sender=AgentThread,
            dispatch_uid="agents.thread_pending_runs",
        )

        from agents import metrics

        metrics.startup()  # app_info, LLM prices, zero-valued series

        from agents import tracing

        tracing.import_sdk()  # when enabled; the client itself is created per process, lazily
