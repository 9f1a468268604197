from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView

from accounts import selectors, services
from accounts.models import Item, User
from accounts.permissions import IsSuperuser, RegistrationOpen
from accounts.serializers import (
    ItemInputSerializer,
    ItemOutputSerializer,
    LoginSerializer,
    LogoutSerializer,
    PasswordChangeSerializer,
    SignupSerializer,
    TokenSerializer,
    UserCreateSerializer,
    UserMeUpdateSerializer,
    UserOutputSerializer,
    UserUpdateSerializer,
)
from core.routers import UUID_REGEX
from core.throttles import LoginAccountRateThrottle, LoginRateThrottle, RateLimitMixin


class LoginAccessTokenView(RateLimitMixin, APIView):
    """OAuth2-style password login: form fields ``username`` (the email) and ``password``."""

    authentication_classes: list[type] = []
    permission_classes = (permissions.AllowAny,)
    throttle_classes = (LoginRateThrottle, LoginAccountRateThrottle)

    @extend_schema(request=LoginSerializer, responses={200: TokenSerializer, 429: None}, auth=[])
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_authenticate(
            request=request,
            email=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        return Response(services.token_pair_create(user=user))


class RateLimitedTokenObtainPairView(RateLimitMixin, TokenObtainPairView):
    """simplejwt's password login (``auth/token/``) under the same limits as
    ``login/access-token``: both count against one ``LOGIN_RATE_LIMIT`` per client IP and one
    per account."""

    throttle_classes = (LoginRateThrottle, LoginAccountRateThrottle)


class LogoutView(APIView):
    """Blacklist a refresh token so that it can't mint new access tokens."""

    authentication_classes: list[type] = []
    permission_classes = (permissions.AllowAny,)

    @extend_schema(request=LogoutSerializer, responses={204: None}, auth=[])
    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.refresh_token_blacklist(token=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class SignupView(APIView):
    """Open registration, when ``USERS_OPEN_REGISTRATION`` allows it."""

    authentication_classes: list[type] = []
    permission_classes = (RegistrationOpen,)

    @extend_schema(request=SignupSerializer, responses={201: UserOutputSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        serializer = SignupSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(**serializer.validated_data)
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class UserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Users: ``me`` for everyone; list, create, update, deactivate for superusers."""

    serializer_class = UserOutputSerializer
    lookup_value_regex = UUID_REGEX

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.action in ("me", "password"):
            return [permissions.IsAuthenticated()]
        return [permissions.IsAuthenticated(), IsSuperuser()]

    def get_queryset(self) -> Any:
        return selectors.user_list(actor=self.request.user)  # type: ignore[arg-type]

    @extend_schema(request=UserCreateSerializer, responses={201: UserOutputSerializer})
    def create(self, request: Request) -> Response:
        serializer = UserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(**serializer.validated_data)
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UserUpdateSerializer, responses={200: UserOutputSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        user = self.get_object()
        serializer = UserUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=user, data=dict(serializer.validated_data))
        return Response(UserOutputSerializer(user).data)

    @extend_schema(
        responses={204: None, 400: None},
        description="Deactivate the user (no data is deleted). 400: a superuser's own account.",
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        actor = request.user
        assert isinstance(actor, User)
        services.user_deactivate(user=self.get_object(), actor=actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"], responses={200: UserOutputSerializer}, description="The caller."
    )
    @extend_schema(
        methods=["PATCH"], request=UserMeUpdateSerializer, responses={200: UserOutputSerializer}
    )
    @action(detail=False, methods=["get", "patch"])
    def me(self, request: Request) -> Response:
        user = request.user
        assert isinstance(user, User)
        if request.method == "PATCH":
            serializer = UserMeUpdateSerializer(data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            user = services.user_update(user=user, data=dict(serializer.validated_data))
        return Response(self.me_payload(user))

    def me_payload(self, user: User) -> dict[str, Any]:
        """The caller's profile, with their daily agent token budget."""
        return {
            **UserOutputSerializer(user).data,
            "token_budget": selectors.user_token_budget(user=user),
        }

    @extend_schema(request=PasswordChangeSerializer, responses={204: None})
    @action(detail=False, methods=["patch", "post"], url_path="me/password")
    def password(self, request: Request) -> Response:
        serializer = PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request.user
        assert isinstance(user, User)
        services.user_change_password(user=user, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemViewSet(viewsets.GenericViewSet):
    """Items: a user sees and changes only their own; a superuser sees all."""

    serializer_class = ItemOutputSerializer
    lookup_value_regex = UUID_REGEX

    def get_queryset(self) -> Any:
        return selectors.item_list_for_user(actor=self.request.user)  # type: ignore[arg-type]

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ItemOutputSerializer(page, many=True).data)

    @extend_schema(request=ItemInputSerializer, responses={201: ItemOutputSerializer})
    def create(self, request: Request) -> Response:
        serializer = ItemInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = services.item_create(owner=request.user, **serializer.validated_data)  # type: ignore[arg-type]
        return Response(ItemOutputSerializer(item).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(ItemOutputSerializer(self.get_object()).data)

    @extend_schema(request=ItemInputSerializer, responses={200: ItemOutputSerializer})
    def update(self, request: Request, pk: str | None = None) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=ItemInputSerializer, responses={200: ItemOutputSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self._update(request, partial=True)

    def _update(self, request: Request, *, partial: bool) -> Response:
        item: Item = self.get_object()
        serializer = ItemInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        item = services.item_update(item=item, data=dict(serializer.validated_data))
        return Response(ItemOutputSerializer(item).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.item_delete(item=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
