"""Admin: the scores list and its filters, scores on the run pages, the evaluate action, jobs."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from agents.tests.factories import AgentRunFactory
from evaluations.models import AgentEvaluation, EvaluationJob
from evaluations.tests.factories import AgentEvaluationFactory, EvaluationJobFactory

pytestmark = pytest.mark.django_db


def page(client: Client, url: str, **params: str) -> str:
    response = client.get(url, params)
    assert response.status_code == HTTPStatus.OK
    return response.content.decode()


def test_scores_list_with_filters(staff_client) -> None:
    run = AgentRunFactory()
    AgentEvaluationFactory(run=run, metric_name="helpfulness", score=0.95)
    AgentEvaluationFactory(run=run, metric_name="toxicity", score=0.2)
    AgentEvaluationFactory(run=run, metric_name="user_feedback", source="user", score=0.5)
    url = reverse("admin:evaluations_agentevaluation_changelist")

    html = page(staff_client, url)
    assert html.count("<tr") >= 4
    assert "gpt-test" in html  # the judge column
    assert reverse("admin:agents_agentrun_change", args=[run.id]) in html
    low = page(staff_client, url, score_range="low")
    assert "toxicity" in low
    assert "0.95" not in low
    high = page(staff_client, url, score_range="high")
    assert "0.95" in high
    assert "0.2<" not in high
    by_source = page(staff_client, url, source="user")
    assert "user_feedback" in by_source
    assert "0.95" not in by_source
    by_metric = page(staff_client, url, metric_name="toxicity")
    assert "0.2" in by_metric
    assert "0.95" not in by_metric
    evaluation = AgentEvaluation.objects.get(metric_name="helpfulness")
    detail = page(
        staff_client, reverse("admin:evaluations_agentevaluation_change", args=[evaluation.id])
    )
    assert "Answers the question." in detail


def test_run_pages_show_scores(staff_client) -> None:
    run = AgentRunFactory()
    AgentEvaluationFactory(run=run, metric_name="helpfulness", score=0.9)
    AgentEvaluationFactory(run=run, metric_name="helpfulness", source="user", score=0.5)
    AgentEvaluationFactory(run=run, metric_name="relevancy", score=0.6)
    listing = page(staff_client, reverse("admin:agents_agentrun_changelist"))
    assert "helpfulness 0.70, relevancy 0.60" in listing  # averaged over the sources
    detail = page(staff_client, reverse("admin:agents_agentrun_change", args=[run.id]))
    assert "Answers the question." in detail
    assert "relevancy" in detail


@pytest.mark.django_db(transaction=True)
def test_evaluate_selected_runs_queues_a_job_that_scores_them(client, superuser) -> None:
    from evaluations.services import embedded_jobs_idle

    client.force_login(superuser)
    runs = AgentRunFactory.create_batch(2)
    AgentRunFactory()  # not selected
    response = client.post(
        reverse("admin:agents_agentrun_changelist"),
        {"action": "evaluate_selected_runs", "_selected_action": [str(r.id) for r in runs]},
        follow=True,
    )
    assert response.status_code == HTTPStatus.OK
    assert "Evaluation of 2 run(s) queued" in response.content.decode()
    job = EvaluationJob.objects.get()
    assert job.requested_by == superuser
    assert sorted(job.params["run_ids"]) == sorted(str(r.id) for r in runs)
    assert embedded_jobs_idle()
    job.refresh_from_db()
    assert job.status == "done"
    assert AgentEvaluation.objects.count() == 10
    html = page(client, reverse("admin:evaluations_evaluationjob_change", args=[job.id]))
    assert "10/10" in html
    assert "metrics_summary" in html


def test_jobs_list(staff_client) -> None:
    EvaluationJobFactory(status="failed", error="boom", total=4, completed=1)
    html = page(staff_client, reverse("admin:evaluations_evaluationjob_changelist"))
    assert "1/4 (25.0%)" in html
    assert "Failed" in html
