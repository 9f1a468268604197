"""The evaluations API: trigger jobs, read their status, list scores, rate a run.

Every endpoint counts against the agent endpoints' rate limit (``AGENT``), applied as the agent
views apply it (the import below is the one place to switch).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from core.pagination import CreatedAtCursorPagination
from core.routers import UUID_REGEX
from core.throttles import AgentRateThrottle, RateLimitMixin
from evaluations import selectors, services
from evaluations.models import AgentEvaluation, EvaluationJob
from evaluations.serializers import (
    EvaluationFilterSerializer,
    EvaluationRequestSerializer,
    EvaluationSerializer,
    FeedbackInputSerializer,
    JobAcceptedSerializer,
    JobSerializer,
)


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


class EvaluationViewSet(RateLimitMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Scores of runs, and evaluations run in the background."""

    throttle_classes = (AgentRateThrottle,)
    serializer_class = EvaluationSerializer
    pagination_class = CreatedAtCursorPagination

    def get_queryset(self) -> Any:
        if self.action != "list":
            return AgentEvaluation.objects.none()
        filters = EvaluationFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.evaluation_list_for_user(
            user=_user(self.request), filters=dict(filters.validated_data)
        )

    @extend_schema(
        parameters=[
            EvaluationFilterSerializer,
            OpenApiParameter("limit", int, description="Page size (default 20, at most 100)"),
        ],
        description="The scores of the caller's runs (staff: everyone's), newest first.",
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=EvaluationRequestSerializer,
        responses={202: JobAcceptedSerializer, 400: None, 404: None, 429: None},
        description=(
            "Judge runs in the background: `run_ids` (the caller's own; staff: anyone's), or the "
            "successful runs of the last `since` (default 24h) that lack a judge score, on "
            "`metrics` (default: all). Answers 202 with the job to poll at `jobs/{job_id}`."
        ),
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = EvaluationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = services.job_create(
            requested_by=_user(request),
            run_ids=data.get("run_ids"),
            since=data.get("since"),
            metric_names=data.get("metrics"),
        )
        return Response({"job_id": str(job.id), "status": job.status}, status=HTTPStatus.ACCEPTED)


class EvaluationJobViewSet(RateLimitMixin, viewsets.GenericViewSet):
    """One evaluation job: its status, progress, and the report when done."""

    throttle_classes = (AgentRateThrottle,)
    serializer_class = JobSerializer
    lookup_value_regex = UUID_REGEX
    queryset = EvaluationJob.objects.none()

    @extend_schema(responses={200: JobSerializer, 404: None})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        services.job_fail_stale()
        job = selectors.job_get_for_user(user=_user(request), job_id=self.kwargs["pk"])
        if job is None:
            raise NotFound("Evaluation job not found.")
        return Response(JobSerializer(job).data)


class RunFeedbackViewSet(RateLimitMixin, viewsets.GenericViewSet):
    """A user's rating of a run."""

    throttle_classes = (AgentRateThrottle,)
    serializer_class = FeedbackInputSerializer
    lookup_value_regex = UUID_REGEX
    queryset = AgentEvaluation.objects.none()

    @extend_schema(
        request=FeedbackInputSerializer,
        responses={200: EvaluationSerializer, 400: None, 404: None, 429: None},
        description=(
            "Rate a run from 0 to 1 (stored as metric `user_feedback`, source `user`; a second "
            "rating replaces the first) and send it to Langfuse. Another user's run is 404 "
            "(staff may rate any run)."
        ),
    )
    @action(detail=True, methods=["post"])
    def feedback(self, request: Request, pk: str | None = None) -> Response:
        serializer = FeedbackInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        evaluation = services.feedback_set(
            user=_user(request),
            run_id=self.kwargs["pk"],
            score=serializer.validated_data["score"],
            comment=serializer.validated_data["comment"],
        )
        return Response(EvaluationSerializer(evaluation).data)
