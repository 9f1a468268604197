from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from agents import selectors, services
from agents.events import AgentEvent
from agents.models import AgentRun, AgentThread
from agents.runner import agent_run, agent_run_execute, agent_run_start
from agents.serializers import (
    RunDetailSerializer,
    RunErrorSerializer,
    RunFilterSerializer,
    RunInputSerializer,
    RunListSerializer,
    RunResultSerializer,
    ThreadDetailSerializer,
    ThreadSerializer,
    ThreadUpdateSerializer,
)
from agents.streaming import stream_events
from config.logging import bind_log_context, correlation_id
from core.pagination import CreatedAtCursorPagination, UpdatedAtCursorPagination
from core.routers import UUID_REGEX
from core.throttles import AgentRateThrottle, RateLimitMixin

# One Server-Sent Event of the run stream, as an SSE client parses it.
SSE_EVENT = inline_serializer(
    "RunStreamEvent",
    fields={
        "event": serializers.ChoiceField(
            choices=["run", "plan", "tool_call", "tool_result", "token", "done", "error"]
        ),
        "data": serializers.CharField(help_text="A JSON object; its fields depend on `event`."),
    },
)


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


class JSONErrorsNegotiation(BaseContentNegotiation):
    """The stream endpoint answers ``text/event-stream`` itself; anything DRF renders there
    (validation and permission errors) is JSON, whatever the client's ``Accept`` says."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        renderer = JSONRenderer()
        return renderer, renderer.media_type


class AgentViewSet(RateLimitMixin, viewsets.GenericViewSet):
    """Run the agent."""

    serializer_class = RunInputSerializer
    throttle_classes = (AgentRateThrottle,)

    def get_content_negotiator(self) -> BaseContentNegotiation:
        # Not cached: DRF asks once before the action is known (for parsers) and once after.
        if getattr(self, "action", None) == "run_stream":
            return JSONErrorsNegotiation()
        return DefaultContentNegotiation()

    @extend_schema(
        request=RunInputSerializer,
        responses={
            200: RunResultSerializer,
            400: None,
            404: None,
            409: None,  # thread_busy (no run) or thread_deleted: the error body
            422: RunErrorSerializer,
            429: None,
            502: RunErrorSerializer,
            503: RunErrorSerializer,
            504: RunErrorSerializer,
        },
        description=(
            "Send a message to the agent and wait for the answer. Pass `thread_id` to continue "
            "a conversation; without it a new thread starts. 409: `thread_busy` (another run of "
            "the thread is in progress) or `thread_deleted`; 502: the LLM failed after its "
            "retries; 503: the database failed the run; 504: the LLM or the run timed out "
            "(`llm_timeout`, `run_timeout`); 422: the agent hit its step limit. The run is stored "
            "in every case."
        ),
    )
    @action(detail=False, methods=["post"])
    def run(self, request: Request) -> Response:
        serializer = RunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = agent_run(
            user=_user(request),
            message=data["message"],
            thread_id=data["thread_id"],
            metadata=data["metadata"],
        )
        return Response(RunResultSerializer(run).data)

    @extend_schema(
        request=RunInputSerializer,
        responses={
            (200, "text/event-stream"): SSE_EVENT,
            400: None,
            404: None,
            409: None,
            429: None,
        },
        description=(
            "Like `run`, answered as Server-Sent Events, each `data:` a JSON object: "
            "`run` {run_id, thread_id, trace_id}, `plan` {plan}, `tool_call` {name, args}, "
            "`tool_result` {name, ok, summary}, `token` {text}, then `done` (the body of "
            "`/agent/run`) or `error` {detail, code, run_id}. Comment lines are heartbeats. "
            "Disconnecting stops the run."
        ),
    )
    @action(detail=False, methods=["post"], url_path="run/stream")
    def run_stream(self, request: Request) -> StreamingHttpResponse:
        serializer = RunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # Validation, the token budget and thread ownership fail here, as plain JSON errors,
        # before any stream.
        run = agent_run_start(
            user=_user(request),
            message=data["message"],
            thread_id=data["thread_id"],
            metadata=data["metadata"],
        )
        # The stream is produced after this view (and the request's log context) returned: the
        # run takes the request's correlation id along, for its log lines and trace.
        request_id = correlation_id()

        def produce(cancel: threading.Event) -> Iterator[AgentEvent]:
            with bind_log_context(correlation_id=request_id):
                yield from agent_run_execute(run=run, tokens=True, cancel=cancel)

        events = stream_events(produce, run_id=str(run.id))
        response = StreamingHttpResponse(events, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: don't buffer the stream
        return response


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's run history, newest first."""

    pagination_class = CreatedAtCursorPagination
    lookup_value_regex = UUID_REGEX

    def get_serializer_class(self) -> type[RunListSerializer]:
        return RunDetailSerializer if self.action == "retrieve" else RunListSerializer

    def get_queryset(self) -> Any:
        if self.action != "list":
            return AgentRun.objects.none()
        filters = RunFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        runs = selectors.run_list_for_user(
            user=_user(self.request), filters=dict(filters.validated_data)
        )
        return runs.defer("tool_calls", "metadata", "plan")

    def get_object(self) -> AgentRun:
        run = selectors.run_get_for_user(user=_user(self.request), run_id=self.kwargs["pk"])
        if run is None:
            raise NotFound("Run not found.")
        return run

    @extend_schema(
        parameters=[
            RunFilterSerializer,
            OpenApiParameter("limit", int, description="Page size (default 20, at most 100)"),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        description="One of the caller's runs: plan, tool calls (name, args, outcome, "
        "duration), tokens and trace URL."
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)


class ThreadViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's conversations, latest activity first."""

    serializer_class = ThreadSerializer
    pagination_class = UpdatedAtCursorPagination
    lookup_value_regex = UUID_REGEX

    def get_queryset(self) -> Any:
        return selectors.thread_list_for_user(user=_user(self.request))

    @extend_schema(
        responses={200: ThreadDetailSerializer},
        description="One of the caller's conversations, with its messages.",
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        thread: AgentThread = self.get_object()
        messages = selectors.thread_messages(thread=thread)
        return Response(ThreadDetailSerializer(thread, context={"messages": messages}).data)

    @extend_schema(description="Delete a conversation: its runs and its memory go with it.")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.thread_delete(thread=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=ThreadUpdateSerializer,
        responses={200: ThreadSerializer, 400: None, 404: None},
        description='Rename a conversation: `{"title": str}`, 1 to 200 characters.',
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        thread: AgentThread = self.get_object()
        serializer = ThreadUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        thread = services.thread_rename(thread=thread, title=serializer.validated_data["title"])
        return Response(ThreadSerializer(thread).data)
