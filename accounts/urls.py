from django.urls import path
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenRefreshView,
    TokenVerifyView,
)

from accounts import views
from core.routers import OptionalSlashRouter

# Paths work with and without a trailing slash, as FastAPI clients expect.
router = OptionalSlashRouter()
router.register("users", views.UserViewSet, basename="users")
router.register("items", views.ItemViewSet, basename="items")

urlpatterns = [
    path("login/access-token", views.LoginAccessTokenView.as_view(), name="login"),
    path("users/signup", views.SignupView.as_view(), name="signup"),
    path("auth/logout", views.LogoutView.as_view(), name="logout"),
    path("auth/token/", views.RateLimitedTokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("auth/token/verify/", TokenVerifyView.as_view(), name="token_verify"),
    path("auth/token/blacklist/", TokenBlacklistView.as_view(), name="token_blacklist"),
    *router.urls,
]
