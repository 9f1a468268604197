"""Request parsers: JSON that PostgreSQL can store, or a 400.

Python's ``json`` accepts what a ``jsonb``/``text`` column refuses (and what DRF would pass on to
the database as a 500): ``NaN``/``Infinity`` and numbers that overflow to them (``1e999``), lone
UTF-16 surrogates (``"\\ud800"``), NUL characters (``"\\u0000"``, in keys too), and nesting
deep enough to exhaust the interpreter's recursion limit. ``JSONParser`` refuses all of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Nesting deeper than this is refused before it reaches the serializers.
MAX_JSON_DEPTH = 32


class UnstorableJSON(ValueError):
    """A JSON value that parses but cannot be stored; the message says why."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnstorableJSON(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise UnstorableJSON(f"{name} is not a JSON number")


def json_value_check(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ``UnstorableJSON`` unless ``value`` (parsed JSON) is storable: finite numbers,
    strings without NUL or lone surrogates (keys included), at most ``max_depth`` levels."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise UnstorableJSON(f"nested deeper than {max_depth} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            _string_check(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnstorableJSON("a number is out of range")


def _string_check(text: str) -> None:
    if "\x00" in text:
        raise UnstorableJSON("a string contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnstorableJSON("a string contains a lone surrogate") from None


def json_loads(text: str | bytes) -> Any:
    """``json.loads`` that raises ``UnstorableJSON`` (a ``ValueError``) for what
    ``json_value_check`` refuses."""
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise UnstorableJSON(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    json_value_check(value)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing what the database could not store (400 ``parse_error``)."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            raw = stream.read() if stream is not None else b""
            return json_loads(raw.decode(encoding))
        except UnstorableJSON as exc:
            raise ParseError(f"JSON parse error - {exc}.") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ParseError(f"JSON parse error - {exc}") from None
