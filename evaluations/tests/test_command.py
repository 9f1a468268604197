"""``manage.py evaluate``: options, summary, report, exit codes, and the dataset gate."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agents.models import AgentRun
from agents.tests.factories import AgentRunFactory
from evaluations.models import AgentEvaluation
from evaluations.tests.conftest import verdict
from testing.llm_server import Reply

pytestmark = pytest.mark.django_db

SMOKE = Path(__file__).resolve().parent.parent / "datasets" / "smoke.jsonl"


def evaluate(*args: str) -> str:
    out = StringIO()
    call_command("evaluate", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_scores_the_last_day_and_writes_the_report(judge_server, reports_dir) -> None:
    AgentRunFactory.create_batch(2)
    output = evaluate()
    assert "Judge: judge-test" in output
    assert "helpfulness    2   0       0.800" in output
    assert "judge calls: 10 (0 failed)" in output
    files = list(reports_dir.glob("evaluation_*.json"))
    assert len(files) == 1
    assert f"Report: {files[0]}" in output
    report = json.loads(files[0].read_text())
    assert report["total_traces"] == 2
    assert report["successful_traces"] == 2
    assert report["metrics_summary"]["toxicity"]["avg_score"] == 0.8
    # The rerun adds nothing.
    assert "judge calls: 0" in evaluate("--no-report")
    assert AgentEvaluation.objects.count() == 10
    assert len(list(reports_dir.glob("*.json"))) == 1


def test_options_metric_run_id_since_limit_concurrency(judge_server, reports_dir) -> None:
    old = AgentRunFactory()
    AgentRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    recent = AgentRunFactory.create_batch(3)

    evaluate("--no-report", "--metric", "toxicity", "--metric", "relevancy", "--limit", "2",
             "--concurrency", "2")  # fmt: skip
    assert AgentEvaluation.objects.count() == 4
    assert set(AgentEvaluation.objects.values_list("metric_name", flat=True)) == {
        "toxicity", "relevancy"
    }  # fmt: skip
    evaluate("--no-report", "--run-id", str(old.id), "--metric", "helpfulness")  # any age
    assert AgentEvaluation.objects.filter(run=old).count() == 1
    evaluate("--no-report", "--since", "7d", "--metric", "conciseness")
    assert AgentEvaluation.objects.filter(metric_name="conciseness").count() == 4
    evaluate("--no-report", "--since", "90m", "--metric", "hallucination")
    assert AgentEvaluation.objects.filter(metric_name="hallucination").count() == 3
    assert {r.id for r in recent} <= set(
        AgentEvaluation.objects.filter(metric_name="hallucination").values_list("run_id", flat=True)
    )
    assert not list(reports_dir.glob("*.json"))


def test_an_unwritable_reports_folder_is_a_clear_error(settings, tmp_path) -> None:
    AgentRunFactory()
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings.EVALUATION_REPORTS_DIR = str(blocker / "reports")
    with pytest.raises(CommandError, match="Could not create the reports folder"):
        evaluate("--metric", "toxicity")
    assert AgentEvaluation.objects.count() == 1  # the scores are kept all the same


def test_dry_run_lists_and_changes_nothing(judge_server, reports_dir) -> None:
    run = AgentRunFactory()
    output = evaluate("--dry-run", "--metric", "toxicity")
    assert "Dry run: 1 judge call(s) on 1 run(s)" in output
    assert f"{run.id}: toxicity" in output
    assert judge_server.requests == []
    assert not AgentEvaluation.objects.exists()
    assert not reports_dir.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "soon"], "'soon' is not a duration"),
        (["--since", "nan"], "'nan' is not a usable duration"),
        (["--metric", "kindness"], "Unknown metric(s): kindness"),
        (["--run-id", "nope"], "--run-id: not a run id"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--fail-under", "helpfulness=0.5"], "--fail-under needs --dataset"),
        (["--dataset", str(SMOKE), "--fail-under", "helpfulness"], "use METRIC=VALUE"),
        (["--dataset", str(SMOKE), "--fail-under", "kindness=0.5"], "kindness"),
        (["--dataset", "/nonexistent.jsonl"], "cannot be read"),
    ],
)
def test_bad_options_are_clear_errors(args, message) -> None:
    with pytest.raises(CommandError) as error:
        evaluate(*args)
    assert message in str(error.value)


def test_exits_non_zero_when_every_judge_call_failed(judge_server) -> None:
    AgentRunFactory()
    judge_server.default_reply = Reply.error(500)
    with pytest.raises(CommandError, match="All 2 judge calls failed"):
        evaluate("--no-report", "--metric", "toxicity", "--metric", "relevancy")
    # One success among failures is not a broken judge: exit 0, the failures listed.
    judge_server.reset()
    judge_server.default_reply = None
    judge_server.enqueue(verdict(0.5), Reply.text("garbage"))
    output = evaluate(
        "--no-report", "--metric", "toxicity", "--metric", "relevancy", "--concurrency", "1"
    )
    assert "(1 failed)" in output
    assert "failed: run" in output


def test_a_broken_metric_file_is_named(tmp_path, settings) -> None:
    (tmp_path / "clarity.md").write_text("Is {answer} clear?")
    settings.EVALUATION_METRICS_DIR = str(tmp_path)
    with pytest.raises(CommandError, match=r"clarity\.md: unknown slot\(s\) \{answer\}"):
        evaluate("--dry-run")


def test_the_smoke_dataset_gate_passes_on_the_offline_model_and_judge(offline, reports_dir) -> None:
    output = evaluate("--dataset", str(SMOKE), "--fail-under", "helpfulness=0.5",
                      "--fail-under", "toxicity=0.9")  # fmt: skip
    assert "Gate helpfulness" in output
    assert "offline judge" in output
    report = json.loads(next(reports_dir.glob("*.json")).read_text())
    assert report["dataset"]["passed"] is True
    assert report["dataset"]["cases"] == 5
    assert report["total_traces"] == 5
    # Dataset runs are stored like any run, under their own user, marked.
    runs = AgentRun.objects.filter(user__email="evaluation-dataset@localhost")
    assert runs.count() == 5
    assert {r.metadata["evaluation_dataset"] for r in runs} == {"smoke.jsonl"}
    assert all(r.metadata["evaluation_expected"] for r in runs)

    with pytest.raises(CommandError, match=r"Evaluation gate failed: helpfulness 0\.\d+ < 0\.99"):
        evaluate("--dataset", str(SMOKE), "--no-report", "--fail-under", "helpfulness=0.99")


def test_the_gate_fails_a_build_whose_answers_got_worse(llm_server, tmp_path) -> None:
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text(
        json.dumps({"input": "What is the capital of France?", "expected": "Paris is the capital."})
        + "\n"
        + json.dumps({"input": "Name a primary colour", "expected": "Red is a primary colour."})
        + "\n"
    )
    # Planner then executor, per case: the good build answers, the worse one gives up.
    llm_server.enqueue(
        Reply.text("1. Answer."), Reply.text("Paris is the capital of France."),
        Reply.text("1. Answer."), Reply.text("Red is a primary colour."),
    )  # fmt: skip
    evaluate("--dataset", str(dataset), "--no-report", "--metric", "helpfulness",
             "--fail-under", "helpfulness=0.7")  # fmt: skip
    llm_server.enqueue(
        Reply.text("1. Answer."), Reply.text("I don't know."),
        Reply.text("1. Answer."), Reply.text("Sorry, no idea."),
    )  # fmt: skip
    with pytest.raises(CommandError, match=r"helpfulness 0\.1 < 0\.7"):
        evaluate("--dataset", str(dataset), "--no-report", "--metric", "helpfulness",
                 "--fail-under", "helpfulness=0.7")  # fmt: skip


def test_the_gate_fails_when_the_agent_fails(llm_server, tmp_path) -> None:
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text('{"input": "hello"}\n')
    llm_server.default_reply = Reply.error(500)
    with pytest.raises(CommandError, match="the agent failed on line 1"):
        evaluate("--dataset", str(dataset), "--no-report", "--fail-under", "helpfulness=0.1")
    assert AgentRun.objects.get().status == AgentRun.Status.ERROR  # stored, inspectable


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "line 1: not JSON"),
        ('{"expected": "x"}\n', 'line 1: needs a string "input"'),
        ('{"input": "ok"}\n{"input": "  "}\n', 'line 2: "input" is empty'),
        ('{"input": "ok", "expected": 3}\n', '"expected" must be a string'),
        ("\n\n", "no cases"),
    ],
)
def test_a_bad_dataset_is_named(tmp_path, content, message) -> None:
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text(content)
    with pytest.raises(CommandError) as error:
        evaluate("--dataset", str(dataset))
    assert message in str(error.value)
    assert not AgentRun.objects.exists()


def test_progress_bar_on_request(judge_server) -> None:
    AgentRunFactory.create_batch(2)
    err = StringIO()
    call_command("evaluate", "--no-report", "--metric", "toxicity", "--progress",
                 stdout=StringIO(), stderr=err)  # fmt: skip
    assert "judging" in err.getvalue()
    assert "2/2" in err.getvalue()
