from agents import views
from core.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("agent", views.AgentViewSet, basename="agent")
router.register("agent/runs", views.RunViewSet, basename="agent-runs")
router.register("agent/threads", views.ThreadViewSet, basename="agent-threads")

urlpatterns = router.urls
