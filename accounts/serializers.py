from __future__ import annotations

from rest_framework import serializers

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
