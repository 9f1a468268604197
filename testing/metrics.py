"""Helpers for the metrics tests."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """A sample of the default registry (this process), 0 when the series does not exist yet."""
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def scraped_sample(text: str, name: str, **labels: str) -> float:
    """One sample's value in a scrape (Prometheus' text format); 0 when it is absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0
