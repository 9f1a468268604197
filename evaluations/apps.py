from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"
    verbose_name = "Evaluations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import logging

        from evaluations import prometheus
        from evaluations.errors import MetricInvalid
        from evaluations.metrics import load_metrics
        from evaluations.models import USER_FEEDBACK

        # A broken metric file is named in the log at start (and the evaluator refuses to run
        # with it), but the web app still serves.
        try:
            names = list(load_metrics())
        except MetricInvalid as exc:
            logging.getLogger(__name__).error("Evaluation metrics not loaded: %s", exc.detail)
            names = []
        prometheus.startup([*names, USER_FEEDBACK])
