"""The API under ``/api/v1/``: every app's routes in one place."""

from django.urls import include, path

app_name = "api"

urlpatterns = [
    path("", include("accounts.urls")),
    path("", include("agents.urls")),
    path("", include("evaluations.urls")),
]
