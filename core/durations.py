"""Durations as the commands take them: ``90m``, ``24h``, ``7d``, ``30s``, ``2w``, or seconds.

``manage.py evaluate --since`` and ``manage.py prune_threads --older-than`` (and the evaluation
API's ``since``) read them with ``parse_duration``.
"""

from __future__ import annotations

import math
from datetime import timedelta

from core.errors import InvalidDuration

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
LONGEST = timedelta(days=10 * 365)


def parse_duration(value: str, *, allow_zero: bool = False) -> timedelta:
    """``value`` as a timedelta: a number, then ``s``, ``m``, ``h``, ``d`` or ``w`` (seconds
    without a unit). More than zero and at most ten years; ``0`` too when ``allow_zero``."""
    text = (value or "").strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in UNITS else (text, "s")
    try:
        amount = float(number)
    except ValueError:
        raise InvalidDuration(
            f"'{value}' is not a duration: use a number and s, m, h, d or w (90m, 24h, 7d)."
        ) from None
    seconds = amount * UNITS[unit]
    # float() takes nan and inf too: neither is a duration (timedelta refuses nan).
    usable = math.isfinite(seconds) and (seconds >= 0 if allow_zero else seconds > 0)
    if not usable or seconds > LONGEST.total_seconds():
        raise InvalidDuration(f"'{value}' is not a usable duration.")
    return timedelta(seconds=seconds)
