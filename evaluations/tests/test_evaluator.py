"""The evaluator: which runs it judges, in parallel, idempotently, and what it reports."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from agents import tracing
from agents.models import AgentRun
from agents.tests.factories import AgentRunFactory
from evaluations import evaluator, selectors, services
from evaluations.models import USER_FEEDBACK, AgentEvaluation
from evaluations.tests.conftest import verdict
from evaluations.tests.factories import AgentEvaluationFactory
from testing.langfuse import langfuse_settings
from testing.llm_server import Reply

pytestmark = pytest.mark.django_db

ALL = ["conciseness", "hallucination", "helpfulness", "relevancy", "toxicity"]


def age(run: AgentRun, delta: timedelta) -> AgentRun:
    AgentRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - delta)
    run.refresh_from_db()
    return run


def scores(run: AgentRun) -> dict[tuple[str, str], float]:
    return {(e.metric_name, e.source): e.score for e in AgentEvaluation.objects.filter(run=run)}


def test_the_last_day_successful_runs_lacking_a_judge_score_per_metric(judge_server) -> None:
    fresh = AgentRunFactory()
    partly = AgentRunFactory()
    AgentEvaluationFactory(run=partly, metric_name="helpfulness", score=0.3)
    rated = AgentRunFactory()
    AgentEvaluationFactory(run=rated, metric_name="helpfulness", source="user", score=0.1)
    old = age(AgentRunFactory(), timedelta(hours=25))
    failed = AgentRunFactory(failed=True)

    report = evaluator.evaluation_run(metric_names=["helpfulness", "relevancy"])

    assert scores(fresh) == {("helpfulness", "judge"): 0.8, ("relevancy", "judge"): 0.8}
    assert scores(partly)[("helpfulness", "judge")] == 0.3  # kept, not judged again
    assert scores(partly)[("relevancy", "judge")] == 0.8
    # User feedback does not count as scored: the judge still scores it.
    assert scores(rated) == {
        ("helpfulness", "user"): 0.1,
        ("helpfulness", "judge"): 0.8,
        ("relevancy", "judge"): 0.8,
    }
    assert scores(old) == {}
    assert scores(failed) == {}
    assert report["total_traces"] == 3
    assert report["judge_calls"] == len(judge_server.requests) == 5

    # --since widens the window.
    evaluator.evaluation_run(metric_names=["helpfulness"], since=timedelta(days=2))
    assert scores(old) == {("helpfulness", "judge"): 0.8}


def test_a_rerun_adds_nothing(judge_server) -> None:
    runs = AgentRunFactory.create_batch(3)
    first = evaluator.evaluation_run()
    assert first["judge_calls"] == 15
    stored = {(e.id, e.score, e.created_at) for e in AgentEvaluation.objects.all()}
    assert len(stored) == 15
    second = evaluator.evaluation_run()
    assert second["judge_calls"] == 0
    assert second["total_traces"] == 0
    assert len(judge_server.requests) == 15
    assert {(e.id, e.score, e.created_at) for e in AgentEvaluation.objects.all()} == stored
    assert all(len(scores(run)) == 5 for run in runs)


def test_an_interrupted_run_keeps_what_it_scored_and_the_rerun_finishes(judge_server) -> None:
    runs = AgentRunFactory.create_batch(4)
    calls = []

    def stop_after_two(done: int, total: int) -> None:
        calls.append(done)
        if done >= 2:
            raise KeyboardInterrupt

    judge_server.default_reply = verdict(0.7, delay=0.05)
    with pytest.raises(KeyboardInterrupt):
        evaluator.evaluation_run(
            metric_names=["helpfulness"], concurrency=1, progress=stop_after_two
        )
    kept = AgentEvaluation.objects.count()
    assert 2 <= kept < 4
    report = evaluator.evaluation_run(metric_names=["helpfulness"])
    assert report["judge_calls"] == 4 - kept
    assert AgentEvaluation.objects.filter(run__in=runs).count() == 4


def test_concurrency_really_overlaps_judge_calls(judge_server) -> None:
    AgentRunFactory.create_batch(8)
    judge_server.default_reply = verdict(0.9, delay=0.4)
    started = time.monotonic()
    report = evaluator.evaluation_run(metric_names=["relevancy"], concurrency=4)
    elapsed = time.monotonic() - started
    assert report["judge_calls"] == 8
    assert judge_server.max_in_flight == 4  # never more than asked, and really 4 at once
    assert elapsed < 8 * 0.4 * 0.6  # sequential would take 3.2 s; two waves take ~0.8 s


def test_report_numbers_and_file(judge_server, reports_dir) -> None:
    _good, mixed = AgentRunFactory(), AgentRunFactory()
    # Calls go out oldest run first, metric by metric: good twice, then mixed twice.
    judge_server.enqueue(
        verdict(0.9, prompt_tokens=100, completion_tokens=10),
        verdict(0.7, prompt_tokens=100, completion_tokens=10),
        Reply.text("I like it", prompt_tokens=50, completion_tokens=5),
        Reply.text("Score: 0.5", prompt_tokens=100, completion_tokens=10),
    )
    report = evaluator.evaluation_run(metric_names=["helpfulness", "relevancy"], concurrency=1)

    assert report["model"] == "judge-test"
    assert report["judge"] == {"model": "judge-test", "offline": False}
    assert (report["total_traces"], report["successful_traces"], report["failed_traces"]) == (
        2,
        1,
        1,
    )
    summary = report["metrics_summary"]
    assert summary["helpfulness"] | {} == {
        **summary["helpfulness"],
        "success_count": 1, "failure_count": 1, "avg_score": 0.9,
    }  # fmt: skip
    assert (summary["relevancy"]["success_count"], summary["relevancy"]["avg_score"]) == (2, 0.6)
    assert summary["relevancy"]["below_threshold"] == 1  # 0.5 < the file's 0.6
    assert report["judge_calls"] == 4
    assert report["failed_judge_calls"] == 1
    assert report["tokens"] == {"prompt": 350, "completion": 35, "total": 385}
    assert report["cost"] == pytest.approx(0.35 * 0.001 + 0.035 * 0.002)  # the invalid one too
    assert report["failures"] == [
        {"run_id": str(mixed.id), "metric": "helpfulness", "code": "judge_answer_invalid",
         "error": "The judge's answer has no score: 'I like it'"}
    ]  # fmt: skip
    assert scores(mixed) == {("relevancy", "judge"): 0.5}  # the failure is not stored

    files = list(reports_dir.glob("evaluation_*.json"))
    assert len(files) == 1
    assert files[0].name == report["report_path"].rsplit("/", 1)[-1]
    on_disk = json.loads(files[0].read_text())
    for key in ("timestamp", "model", "total_traces", "successful_traces", "failed_traces",
                "duration_seconds", "metrics_summary", "report_path"):  # fmt: skip
        assert on_disk[key] == report[key]

    # The failed one is judged again on the next run; the stored ones are not.
    judge_server.enqueue(verdict(0.4))
    again = evaluator.evaluation_run(metric_names=["helpfulness", "relevancy"])
    assert again["judge_calls"] == 1
    assert scores(mixed)[("helpfulness", "judge")] == 0.4


def test_eval_metadata_says_who_judged_with_which_prompt(judge_server) -> None:
    run = AgentRunFactory()
    judge_server.enqueue(verdict(0.75, "Mostly grounded.", prompt_tokens=200, completion_tokens=30))
    evaluator.evaluation_run(metric_names=["hallucination"])
    meta = AgentEvaluation.objects.get(run=run).eval_metadata
    assert meta["reasoning"] == "Mostly grounded."
    assert meta["judge_model"] == "judge-test"
    assert meta["offline"] is False
    assert meta["prompt_version"] == "1"
    assert len(meta["prompt_sha256"]) == 64
    assert (meta["prompt_tokens"], meta["completion_tokens"]) == (200, 30)
    assert meta["cost"] == pytest.approx(0.2 * 0.001 + 0.03 * 0.002)
    assert meta["latency_ms"] >= 0
    assert meta["attempts"] == 1


def test_offline_judge_is_labelled_in_rows_and_report() -> None:
    run = AgentRunFactory()
    report = evaluator.evaluation_run(write_report=False)
    assert report["model"] == "offline"
    assert report["judge"]["offline"] is True
    assert report["judge_calls"] == 5
    assert report["failed_judge_calls"] == 0
    for evaluation in AgentEvaluation.objects.filter(run=run):
        assert evaluation.eval_metadata["offline"] is True
        assert evaluation.eval_metadata["reasoning"].startswith("offline judge:")


def test_dry_run_stores_and_sends_nothing(judge_server, reports_dir) -> None:
    runs = AgentRunFactory.create_batch(2)
    AgentEvaluationFactory(run=runs[0], metric_name="toxicity")
    report = evaluator.evaluation_run(dry_run=True)
    assert report["dry_run"] is True
    assert report["judge_calls_planned"] == 9
    assert {item["run_id"] for item in report["would_judge"]} == {str(r.id) for r in runs}
    assert judge_server.requests == []
    assert AgentEvaluation.objects.count() == 1
    assert not reports_dir.exists() or not list(reports_dir.iterdir())


def test_the_sample_is_decided_by_run_id(judge_server, settings) -> None:
    runs = AgentRunFactory.create_batch(40)
    settings.EVALUATION_SAMPLE_RATE = 0.5
    expected = {r.id for r in runs if selectors.in_sample(r.id, 0.5)}
    assert 5 < len(expected) < 35
    evaluator.evaluation_run(metric_names=["toxicity"])
    assert set(AgentEvaluation.objects.values_list("run_id", flat=True)) == expected
    assert evaluator.evaluation_run(metric_names=["toxicity"])["judge_calls"] == 0


def test_all_calls_failing_is_flagged(judge_server) -> None:
    AgentRunFactory.create_batch(2)
    judge_server.default_reply = Reply.error(500)
    judge_server_settings = evaluator.evaluation_run(metric_names=["relevancy"])
    assert evaluator.evaluation_all_failed(judge_server_settings)
    assert judge_server_settings["failures"][0]["code"] == "judge_unavailable"
    assert not evaluator.evaluation_all_failed(
        evaluator.evaluation_run(metric_names=["relevancy"], run_ids=[])
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_langfuse")
def test_langfuse_receives_each_score_once_on_the_runs_trace(
    judge_server, settings, receiver
) -> None:
    langfuse_settings(settings, receiver.base_url)
    traced = AgentRunFactory()
    traced.trace_id = tracing.trace_id_for_run(traced.id)
    traced.save()
    untraced = AgentRunFactory()

    evaluator.evaluation_run(metric_names=["helpfulness", "relevancy"])
    received = receiver.wait_for_scores(count=2)
    assert {(s["name"], s["traceId"], s["value"]) for s in received} == {
        ("helpfulness", traced.trace_id, 0.8),
        ("relevancy", traced.trace_id, 0.8),
    }
    assert {s["id"] for s in received} == {
        services.score_id_for(run_id=traced.id, metric=m, source="judge")
        for m in ("helpfulness", "relevancy")
    }
    assert all(s["dataType"] == "NUMERIC" and s["comment"] for s in received)
    assert AgentEvaluation.objects.filter(run=untraced).count() == 2  # stored, not sent

    # A rerun sends nothing more; the user's rating goes once too, under its own id.
    evaluator.evaluation_run(metric_names=["helpfulness", "relevancy"])
    services.feedback_set(user=traced.user, run_id=traced.id, score=1.0, comment="great")
    tracing.flush_langfuse()
    feedback = receiver.wait_for_scores(lambda s: s["name"] == USER_FEEDBACK)
    assert feedback[0]["id"] == services.score_id_for(
        run_id=traced.id, metric=USER_FEEDBACK, source="user"
    )
    assert feedback[0]["comment"] == "great"
    time.sleep(0.3)
    assert len(receiver.scores) == 3


def test_prometheus_counts_scores_and_judge_calls(judge_server) -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "count": value("agent_evaluation_score_count", metric="relevancy"),
        "sum": value("agent_evaluation_score_sum", metric="relevancy"),
        "ok": value("agent_evaluation_judge_calls_total", outcome="ok"),
        "invalid": value("agent_evaluation_judge_calls_total", outcome="invalid"),
        "retry": value("agent_evaluation_judge_calls_total", outcome="retry"),
    }
    AgentRunFactory.create_batch(3)
    judge_server.enqueue(
        verdict(0.5), Reply.error(429, headers={"Retry-After": "0"}), verdict(1.0), Reply.text("?")
    )
    evaluator.evaluation_run(metric_names=["relevancy"], concurrency=1)
    assert value("agent_evaluation_score_count", metric="relevancy") - before["count"] == 2
    assert value("agent_evaluation_score_sum", metric="relevancy") - before["sum"] == 1.5
    assert value("agent_evaluation_judge_calls_total", outcome="ok") - before["ok"] == 2
    assert value("agent_evaluation_judge_calls_total", outcome="invalid") - before["invalid"] == 1
    assert value("agent_evaluation_judge_calls_total", outcome="retry") - before["retry"] == 1
