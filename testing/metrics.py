"""Helpers for the metrics tests."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """A sample of the default registry (this process), 0 when the series does not exist yet."""
    return REGISTRY.get_sample_value(name, labels or None) or 0.0
