"""The API under ``/api/v1/``: every app's routes in one place."""

from django.urls import include, path

from core.api_index import ApiIndexView

app_name = "api"

urlpatterns = [
    path("", ApiIndexView.as_view(), name="index"),
    path("", include("accounts.urls")),
    path("", include("agents.urls")),
    path("", include("evaluations.urls")),
]
