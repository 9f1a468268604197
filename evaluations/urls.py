from core.routers import OptionalSlashRouter
from evaluations import views

router = OptionalSlashRouter()
router.register("agent/evaluations/jobs", views.EvaluationJobViewSet, basename="evaluation-jobs")
router.register("agent/evaluations", views.EvaluationViewSet, basename="evaluations")
router.register("agent/runs", views.RunFeedbackViewSet, basename="run-feedback")

urlpatterns = router.urls
