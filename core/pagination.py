"""Pagination classes shared by the API."""

from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


class CreatedAtCursorPagination(pagination.CursorPagination):
    """Newest first, stable under inserts: for run and thread history."""

    ordering = "-created_at"
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100


class UpdatedAtCursorPagination(CreatedAtCursorPagination):
    """Latest activity first: for thread lists."""

    ordering = "-updated_at"
