"""``core.durations.parse_duration``: what ``evaluate --since`` and ``prune_threads
--older-than`` accept."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.durations import parse_duration
from core.errors import InvalidDuration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        (" 7D ", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        ("45", timedelta(seconds=45)),
        ("3650d", timedelta(days=3650)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(text, allow_zero=True) == expected


@pytest.mark.parametrize("text", ["0d", "0", "0s", "0.0h"])
def test_zero_only_where_allowed(text: str) -> None:
    assert parse_duration(text, allow_zero=True) == timedelta(0)
    with pytest.raises(InvalidDuration, match="is not a usable duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "'soon' is not a duration: use a number and s, m, h, d or w"),
        ("", "'' is not a duration"),
        ("d", "'d' is not a duration"),
        ("7 days", "'7 days' is not a duration"),
        ("-1d", "'-1d' is not a usable duration"),
        ("nan", "'nan' is not a usable duration"),
        ("infh", "'infh' is not a usable duration"),
        ("3651d", "'3651d' is not a usable duration"),
    ],
)
def test_what_is_not_a_duration(text: str, message: str) -> None:
    for allow_zero in (False, True):
        with pytest.raises(InvalidDuration) as error:
            parse_duration(text, allow_zero=allow_zero)
        assert message in error.value.detail
        assert error.value.code == "invalid_duration"
