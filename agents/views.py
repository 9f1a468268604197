from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from agents import selectors, services
from agents.control import approval_expire_if_due, run_cancel, run_wait
from agents.eventlog import LoggedEvent, get_event_log, parse_last_event_id
from agents.models import AgentRun, AgentThread
from agents.runner import (
    agent_run,
    agent_run_events,
    agent_run_resume_start,
    agent_run_start,
    run_outcome,
)
from agents.serializers import (
    ResumeInputSerializer,
    RunAcceptedSerializer,
    RunDetailSerializer,
    RunErrorSerializer,
    RunFilterSerializer,
    RunInputSerializer,
    RunListSerializer,
    RunResultSerializer,
    RunStreamInputSerializer,
    ThreadDetailSerializer,
    ThreadSerializer,
    ThreadUpdateSerializer,
)
from agents.streaming import follow_run, stream_events
from config.logging import bind_log_context, correlation_id
from core.pagination import CreatedAtCursorPagination, UpdatedAtCursorPagination
from core.routers import UUID_REGEX
from core.throttles import AgentRateThrottle, RateLimitMixin

# One Server-Sent Event of the run stream, as an SSE client parses it.
SSE_EVENT = inline_serializer(
    "RunStreamEvent",
    fields={
        "event": serializers.ChoiceField(
            choices=[
                "run",
                "plan",
                "tool_call",
                "tool_result",
                "token",
                "done",
                "error",
                "interrupt",
            ]
        ),
        "id": serializers.CharField(help_text="The event's id in the run's stream."),
        "data": serializers.CharField(help_text="A JSON object; its fields depend on `event`."),
    },
)


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


def _run_request(request: Request, serializer: RunInputSerializer) -> dict[str, Any]:
    """A run's request body, validated (400 otherwise): the arguments that start it."""
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    return {
        "user": _user(request),
        "message": data["message"],
        "thread_id": data["thread_id"],
        "metadata": data["metadata"],
        "multitask_strategy": data["multitask_strategy"],
    }


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
            "a conversation; without it a new thread starts. When the thread has a run pending or "
            "running, `multitask_strategy` decides: `reject` (409 `thread_busy`, the default), "
            "`enqueue`, `interrupt` or `rollback` (this run waits for its turn, then answers). "
            "409: `thread_busy`, `thread_deleted`, or `cancelled` (the run was cancelled); "
            "502: the LLM failed after its retries; 503: the database failed the run; 504: the "
            "LLM or the run timed out (`llm_timeout`, `run_timeout`); 422: the agent hit its "
            "step limit. The run is stored in every case."
        ),
    )
    @action(detail=False, methods=["post"])
    def run(self, request: Request) -> Response:
        run = agent_run(**_run_request(request, RunInputSerializer(data=request.data)))
        return Response(RunResultSerializer(run).data)

    @extend_schema(
        request=RunStreamInputSerializer,
        responses={
            (200, "text/event-stream"): SSE_EVENT,
            400: None,
            404: None,
            409: None,
            429: None,
        },
        description=(
            "Like `run`, answered as Server-Sent Events, each with an `id:` and a JSON `data:`: "
            "`run` {run_id, thread_id, trace_id}, `plan` {plan}, `tool_call` {name, args}, "
            "`tool_result` {name, ok, summary}, `token` {text}, then `done` (the body of "
            "`/agent/run`) or `error` {detail, code, run_id}. Comment lines are heartbeats. "
            "`on_disconnect`: `cancel` (default) stops the run when the client disconnects; "
            "`continue` lets it go on in the background, to be joined at "
            "`GET /agent/runs/{run_id}/stream` with the last `id` read as `Last-Event-ID`."
        ),
    )
    @action(detail=False, methods=["post"], url_path="run/stream")
    def run_stream(self, request: Request) -> StreamingHttpResponse:
        serializer = RunStreamInputSerializer(data=request.data)
        arguments = _run_request(request, serializer)
        go_on = serializer.validated_data["on_disconnect"] == "continue"
        # Validation, the token budget and thread ownership fail here, as plain JSON errors,
        # before any stream. With ``continue`` the background executor runs it, followed from
        # its log.
        run = agent_run_start(**arguments, background=go_on)
        return _run_stream(run, cancel_on_disconnect=not go_on)


def _run_stream(run: AgentRun, *, cancel_on_disconnect: bool) -> StreamingHttpResponse:
    """A started run, answered as its SSE stream: executed here (``running``), or followed
    from its event log while the background executor runs it (``pending``)."""
    if run.status == AgentRun.Status.PENDING:
        events = follow_run(str(run.id), after=None, cancel_on_disconnect=cancel_on_disconnect)
        return _event_stream(events)
    # The stream is produced after this view (and the request's log context) returned: the
    # run takes the request's correlation id along, for its log lines and trace.
    request_id = correlation_id()

    def produce(cancel: threading.Event) -> Iterator[LoggedEvent]:
        with bind_log_context(correlation_id=request_id):
            yield from agent_run_events(run=run, tokens=True, cancel=cancel)

    return _event_stream(stream_events(produce, run_id=str(run.id)))


def _run_answer(run: AgentRun) -> AgentRun:
    """A started run, executed here to its end (or, pending, waited for): the finished run,
    or the domain error it ended with."""
    if run.status == AgentRun.Status.PENDING:
        return run_outcome(run_wait(run=run, timeout=float(settings.AGENT_RUN_STALE_AFTER_SECONDS)))
    for _event in agent_run_events(run=run):
        pass
    return run


def _event_stream(events: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: don't buffer the stream
    return response


class RunViewSet(
    RateLimitMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The caller's run history, newest first; background runs, and their control."""

    pagination_class = CreatedAtCursorPagination
    lookup_value_regex = UUID_REGEX

    def get_throttles(self) -> list[Any]:
        # Starting and cancelling runs count against the agent limit; reading them does not.
        if getattr(self, "action", None) in ("create", "cancel", "resume"):
            return [AgentRateThrottle()]
        return []

    def get_content_negotiator(self) -> BaseContentNegotiation:
        if getattr(self, "action", None) in ("stream", "resume"):
            return JSONErrorsNegotiation()
        return DefaultContentNegotiation()

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        if self.action == "create":
            return RunInputSerializer
        return RunDetailSerializer if self.action != "list" else RunListSerializer

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
        description="One of the caller's runs: status (`pending`, `running`, `success`, "
        "`error`, `interrupted`), plan, tool calls (name, args, outcome, duration), tokens, "
        "trace URL, and `result`: the body `POST /agent/run` answered, once the run ended."
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        run = approval_expire_if_due(self.get_object())  # closed as rejected when expired
        return Response(RunDetailSerializer(run).data)

    @extend_schema(
        request=RunInputSerializer,
        responses={202: RunAcceptedSerializer, 400: None, 404: None, 409: None, 429: None},
        description="Start a background run: the body of `POST /agent/run`; answered at once "
        "with 202 `{run_id, thread_id, status: pending}`. A worker executes it (the app's own "
        "process on the embedded default). Follow it at `/agent/runs/{run_id}`, `/wait` or "
        "`/stream`; stop it at `/cancel`.",
    )
    def create(self, request: Request) -> Response:
        arguments = _run_request(request, RunInputSerializer(data=request.data))
        run = agent_run_start(**arguments, background=True)
        body = RunAcceptedSerializer(run).data
        headers = {"Location": f"{request.path.rstrip('/')}/{run.id}"}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "timeout", float, description="Seconds to wait (default 60, at most 300)."
            )
        ],
        responses={
            200: RunResultSerializer,
            202: RunAcceptedSerializer,
            400: None,
            404: None,
            409: RunErrorSerializer,
            422: RunErrorSerializer,
            502: RunErrorSerializer,
            503: RunErrorSerializer,
            504: RunErrorSerializer,
        },
        description="Wait for the run to end, at most `timeout` seconds, and answer what "
        "`POST /agent/run` would have: the result (200), or the run's error with its status "
        "code. Still pending or running after the timeout: 202 with its current status.",
    )
    @action(detail=True, methods=["get"])
    def wait(self, request: Request, pk: str | None = None) -> Response:
        timeout = _wait_timeout(request)
        run = run_wait(run=self.get_object(), timeout=timeout)
        if run.status in AgentRun.ACTIVE:
            return Response(RunAcceptedSerializer(run).data, status=status.HTTP_202_ACCEPTED)
        return Response(RunResultSerializer(run_outcome(run)).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                str,
                OpenApiParameter.HEADER,
                description="Resume after this event id (the last one read).",
            )
        ],
        responses={(200, "text/event-stream"): SSE_EVENT, 404: None, 503: None},
        description="Join the run's stream: its events from the start, or after the one "
        "named in `Last-Event-ID`, then live until `done` or `error`. Any number of clients "
        "may follow one run, on any replica; leaving does not stop it.",
    )
    @action(detail=True, methods=["get"])
    def stream(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        run = self.get_object()
        after = parse_last_event_id(request.headers.get("Last-Event-ID"))
        get_event_log().read(str(run.id), after)  # EventLogUnavailable (503) before any stream
        return _event_stream(follow_run(str(run.id), after=after))

    @extend_schema(
        request=None,
        responses={202: RunDetailSerializer, 404: None, 409: None, 429: None},
        description="Stop a pending or running run, wherever it executes: a pending run ends "
        "at once, a running one at its next model token or tool boundary, as `error` with "
        "code `cancelled` (its open tool calls answered, so the thread's next turn works). "
        "409 `run_not_active` when the run has ended.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = run_cancel(run=self.get_object())
        return Response(RunDetailSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=ResumeInputSerializer,
        responses={
            200: RunResultSerializer,
            (200, "text/event-stream"): SSE_EVENT,
            202: RunAcceptedSerializer,
            400: None,
            404: None,
            409: None,
            429: None,
            502: RunErrorSerializer,
            503: RunErrorSerializer,
            504: RunErrorSerializer,
        },
        description="Continue an `interrupted` run (its calls wait for approval) with a "
        "decision: `approve` runs the calls, `edit` runs the call with new `args` (checked "
        "against the tool's schema: 400 otherwise), `reject` answers it with the refusal and "
        "`comment`, so the model can respond. The continuation is a new run (`resumed_from` "
        "the interrupted one), answered like `agent/run` (the default), as SSE (`stream`, "
        "with `on_disconnect` as for `agent/run/stream`) or with 202 (`background`). 409 "
        "`run_not_interrupted`: not interrupted, resumed already, or expired "
        "(`AGENT_APPROVAL_TTL_HOURS`).",
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response | StreamingHttpResponse:
        serializer = ResumeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        go_on = data["stream"] and data["on_disconnect"] == "continue"
        run = agent_run_resume_start(
            run=self.get_object(),
            decision=data["decision"],
            args=data.get("args"),
            tool_call_id=data.get("tool_call_id"),
            comment=data["comment"],
            background=data["background"] or go_on,  # go_on: followed from its event log
        )
        if data["background"]:
            body = RunAcceptedSerializer(run).data
            return Response(body, status=status.HTTP_202_ACCEPTED)
        if data["stream"]:
            return _run_stream(run, cancel_on_disconnect=not go_on)
        return Response(RunResultSerializer(_run_answer(run)).data)


def _wait_timeout(request: Request) -> float:
    raw = request.query_params.get("timeout")
    if raw is None:
        return float(settings.AGENT_RUN_WAIT_DEFAULT_SECONDS)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    limit = float(settings.AGENT_RUN_WAIT_MAX_SECONDS)
    if not 0 <= value <= limit or value != value:  # NaN
        raise ValidationError({"timeout": [f"A number of seconds from 0 to {limit:g}."]})
    return value


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
