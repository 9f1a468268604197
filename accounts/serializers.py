from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts.models import Item, User


class LoginSerializer(serializers.Serializer):
    """The OAuth2 password form the seed's curl sends: ``username`` is the email."""

    username = serializers.CharField(max_length=255)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "email", "full_name", "is_active", "is_superuser", "date_joined")
        read_only_fields = fields


class SignupSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=255)
    password = serializers.CharField(min_length=8, max_length=128, trim_whitespace=False)
    full_name = serializers.CharField(max_length=255, required=False, allow_blank=True)


class UserMeUpdateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=255, required=False)
    full_name = serializers.CharField(max_length=255, required=False, allow_blank=True)


class PasswordChangeSerializer(serializers.Serializer):
    current_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(min_length=8, max_length=128, trim_whitespace=False)


class UserCreateSerializer(SignupSerializer):
    is_superuser = serializers.BooleanField(default=False)
    is_active = serializers.BooleanField(default=True)


class UserUpdateSerializer(UserMeUpdateSerializer):
    password = serializers.CharField(
        min_length=8, max_length=128, trim_whitespace=False, required=False
    )
    is_superuser = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)


class ItemInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class ItemOutputSerializer(serializers.ModelSerializer):
    owner_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Item
        fields = ("id", "title", "description", "owner_id", "created_at", "updated_at")
        read_only_fields = fields


class TokenRefreshSerializer(jwt_serializers.TokenRefreshSerializer):
    """simplejwt's refresh, which also refuses a token issued before the user's password last
    changed (``CHECK_REVOKE_TOKEN``, which simplejwt checks on access tokens only) and answers
    401 instead of a 500 for a user that no longer exists."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])
        user_id = refresh.payload.get(jwt_settings.USER_ID_CLAIM)
        user = User.objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).first()
        revoked = (
            jwt_settings.CHECK_REVOKE_TOKEN
            and user is not None
            and (
                refresh.payload.get(jwt_settings.REVOKE_TOKEN_CLAIM)
                != get_md5_hash_password(user.password)
            )
        )
        if user is None or revoked:
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            )
        return super().validate(attrs)
