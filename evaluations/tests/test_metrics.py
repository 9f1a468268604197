"""Metric prompts are markdown files: loaded from the folder, checked, named in errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluations.errors import MetricInvalid, UnknownMetric
from evaluations.metrics import PROMPTS_DIR, load_metric, load_metrics, select_metrics

SHIPPED = {"conciseness", "hallucination", "helpfulness", "relevancy", "toxicity"}


def test_the_five_shipped_metrics_load_with_front_matter() -> None:
    metrics = load_metrics(PROMPTS_DIR)
    assert set(metrics) == SHIPPED
    for metric in metrics.values():
        assert metric.version == "1"
        assert metric.description
        assert metric.threshold is not None
        assert 0 < metric.threshold <= 1
        assert len(metric.sha256) == 64
        assert "---" not in metric.prompt.splitlines()[0]
        assert "1.0" in metric.prompt  # each says what the best score means
    # Hallucination is judged against what the tools returned, with the plan and the calls.
    assert {"input", "output", "context", "plan", "tool_calls"} <= set(
        metrics["hallucination"].slots
    )


def test_a_new_file_is_a_new_metric(tmp_path: Path, settings) -> None:
    (tmp_path / "tool_use.md").write_text(
        "Did the agent call the right tools for {input}?\nCalls: {tool_calls}\n"
        'Answer as {"reasoning": "...", "score": 0.5}.'
    )
    settings.EVALUATION_METRICS_DIR = str(tmp_path)
    metric = select_metrics(["tool_use"])[0]
    assert metric.version == "1"
    assert metric.threshold is None
    rendered = metric.render({"input": "hi", "tool_calls": "1. lookup()"})
    assert "right tools for hi?" in rendered
    assert "Calls: 1. lookup()" in rendered
    assert '{"reasoning": "...", "score": 0.5}' in rendered  # other braces stay as written


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Rate {input} and {answer}", "broken.md: unknown slot(s) {answer}"),
        ("---\nversion: 2\nowner: me\n---\nRate {input}", "broken.md, line 3: unknown front"),
        ("---\nversion: 2\nRate {input}", "broken.md: front matter opened with --- is never"),
        ("---\nthreshold: high\n---\nRate {output}", "broken.md: threshold 'high' is not a"),
        ("---\nthreshold: 1.5\n---\nRate {output}", "broken.md: threshold '1.5' is not a"),
        ("---\nversion 2\n---\nRate {output}", "broken.md, line 2: expected 'key: value'"),
        ("---\nversion: 1\n---\n\n", "broken.md: the prompt is empty"),
        ("Rate the weather", "broken.md: the prompt uses neither {input} nor {output}"),
    ],
)
def test_a_broken_file_is_named_with_its_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.md"
    path.write_text(text)
    with pytest.raises(MetricInvalid) as error:
        load_metric(path)
    assert message in error.value.detail


def test_a_broken_file_stops_loading_the_folder(tmp_path: Path, settings) -> None:
    (tmp_path / "fine.md").write_text("Rate {output}")
    (tmp_path / "bad.md").write_text("Rate {outptu}")
    settings.EVALUATION_METRICS_DIR = str(tmp_path)
    with pytest.raises(MetricInvalid, match=r"bad\.md: unknown slot"):
        select_metrics(None)


def test_unknown_metric_names_the_available_ones() -> None:
    with pytest.raises(UnknownMetric) as error:
        select_metrics(["helpfulness", "kindness"])
    assert "kindness" in error.value.detail
    assert "helpfulness" in error.value.detail.split("Available:")[1]


def test_a_changed_file_is_read_again(tmp_path: Path, settings) -> None:
    settings.EVALUATION_METRICS_DIR = str(tmp_path)
    path = tmp_path / "clarity.md"
    path.write_text("---\nversion: 1\n---\nIs {output} clear?")
    first = select_metrics(["clarity"])[0]
    path.write_text("---\nversion: 2\n---\nIs {output} clear and short?")
    import os

    os.utime(path, (first_mtime := path.stat().st_mtime + 5, first_mtime))
    second = select_metrics(["clarity"])[0]
    assert (first.version, second.version) == ("1", "2")
    assert first.sha256 != second.sha256
