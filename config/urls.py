from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from agents import pages
from config import metrics_view, views
from core.api_docs import RedocView, SwaggerView
from core.throttles import login_form_rate_limited

urlpatterns = [
    path("", pages.home, name="home"),
    path("chat/", pages.chat, name="chat"),
    path("chat/<uuid:thread_id>/", pages.chat, name="chat-thread"),
    path(
        "accounts/login/",
        login_form_rate_limited(auth_views.LoginView.as_view()),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics_view.metrics, name="metrics"),
    # Before the admin's own route, so that its login form is rate limited like every other.
    path("admin/login/", login_form_rate_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_router")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc", RedocView.as_view(url_name="schema"), name="redoc"),
]
