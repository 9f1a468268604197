"""Factories for scores and evaluation jobs (runs: ``agents.tests.factories``)."""

from __future__ import annotations

import factory

from agents.tests.factories import AgentRunFactory
from evaluations.models import AgentEvaluation, EvaluationJob


class AgentEvaluationFactory(factory.django.DjangoModelFactory[AgentEvaluation]):
    class Meta:
        model = AgentEvaluation

    run = factory.SubFactory(AgentRunFactory)
    metric_name = "helpfulness"
    score = 0.8
    source = AgentEvaluation.Source.JUDGE
    eval_metadata = factory.LazyFunction(
        lambda: {"reasoning": "Answers the question.", "judge_model": "gpt-test", "offline": False}
    )


class EvaluationJobFactory(factory.django.DjangoModelFactory[EvaluationJob]):
    class Meta:
        model = EvaluationJob

    status = EvaluationJob.Status.QUEUED
    backend = "embedded"
    params = factory.LazyFunction(dict)
