"""Pagination classes shared by the API."""

from __future__ import annotations

from base64 import b64decode
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


class CreatedAtCursorPagination(pagination.CursorPagination):
    """Newest first, stable under inserts: for run and thread history.

    A ``cursor`` the API did not hand out, or a ``limit`` that is not a positive integer, is a
    400 (DRF would answer 404 for the one and silently use the default for the other).
    """

    ordering = "-created_at"
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100

    def decode_cursor(self, request: Request) -> pagination.Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            cursor = None
            valid = False
        else:
            # The position is the ordering field's value: a timestamp (DRF would pass any text
            # to the database).
            valid = cursor is None or (
                _is_base64(request.query_params[self.cursor_query_param])
                and (cursor.position is None or _is_timestamp(cursor.position))
            )
        if not valid:
            raise ValidationError(
                {self.cursor_query_param: ["Invalid cursor: use the next/previous link."]},
                code="invalid",
            )
        return cursor

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None:
            try:
                size = int(raw)
            except ValueError:
                size = 0
            if size < 1:
                raise ValidationError(
                    {self.page_size_query_param: ["A positive integer is required."]},
                    code="invalid",
                )
            return min(size, self.max_page_size)
        return self.page_size


class UpdatedAtCursorPagination(CreatedAtCursorPagination):
    """Latest activity first: for thread lists."""

    ordering = "-updated_at"


def _is_base64(value: str) -> bool:
    try:
        return bool(value) and bool(b64decode(value.encode("ascii"), validate=True))
    except (ValueError, UnicodeEncodeError):
        return False


def _is_timestamp(value: Any) -> bool:
    try:
        return "\x00" not in value and parse_datetime(value) is not None
    except (TypeError, ValueError):
        return False
