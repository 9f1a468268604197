from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import AgentRun, AgentThread
from agents.tracing import trace_url
from core.parsers import UnstorableJSON, json_value_check

# Levels of nesting in a run's metadata (the object itself is the first).
METADATA_MAX_DEPTH = 10


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn 42 into "42"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class BlankAsNullCharField(serializers.CharField):
    """A column that stores "" for "none" (``AgentRun.trace_id``), answered as null: an absent
    id is null in every body of the API."""

    def to_representation(self, value: Any) -> str | None:  # type: ignore[override]
        return super().to_representation(value) if value else None


class RunInputSerializer(serializers.Serializer):
    message = StrictCharField(trim_whitespace=True, allow_blank=False)
    thread_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    metadata = serializers.DictField(required=False, allow_null=True, default=None)
    multitask_strategy = serializers.ChoiceField(
        choices=AgentRun.Strategy.choices,
        default=AgentRun.Strategy.REJECT,
        help_text="When the thread has a run pending or running: `reject` (409 `thread_busy`), "
        "`enqueue` (run after it), `interrupt` (cancel it, keeping what it wrote) or `rollback` "
        "(cancel it and remove its turn from the thread's memory).",
    )

    def validate_message(self, value: str) -> str:
        limit = settings.AGENT_MAX_MESSAGE_CHARS
        if len(value) > limit:
            raise serializers.ValidationError(
                f"Ensure this field has no more than {limit} characters (it has {len(value)}).",
                code="max_length",
            )
        return value

    def validate_metadata(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:  # what PostgreSQL's jsonb refuses, whichever parser read the body
                json_value_check(value, max_depth=METADATA_MAX_DEPTH)
            except UnstorableJSON as exc:
                raise serializers.ValidationError(
                    f"Metadata cannot be stored: {exc}.", code="invalid"
                ) from None
            size = len(json.dumps(value, default=str))
            if size > settings.AGENT_MAX_METADATA_BYTES:
                raise serializers.ValidationError(
                    f"Metadata is {size} bytes; at most {settings.AGENT_MAX_METADATA_BYTES}.",
                    code="max_length",
                )
        return value


def _on_disconnect_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=(("cancel", "cancel"), ("continue", "continue")),
        default="cancel",
        help_text="When the client disconnects before the end: `cancel` stops the run; "
        "`continue` lets it go on in the background (join it at `GET /agent/runs/{id}/stream`).",
    )


class RunStreamInputSerializer(RunInputSerializer):
    on_disconnect = _on_disconnect_field()


class ResumeInputSerializer(serializers.Serializer):
    """``POST agent/runs/{id}/resume``: what a person decided on an interrupted run's calls."""

    decision = serializers.ChoiceField(
        choices=(("approve", "approve"), ("reject", "reject"), ("edit", "edit"))
    )
    args = serializers.DictField(
        required=False,
        help_text="`edit`: the arguments to run the call with (checked against the tool's "
        "schema). With several calls waiting, name the one with `tool_call_id`.",
    )
    tool_call_id = serializers.CharField(required=False, max_length=200)
    comment = StrictCharField(required=False, allow_blank=True, max_length=2000, default="")
    stream = serializers.BooleanField(default=False, help_text="Answer as Server-Sent Events.")
    background = serializers.BooleanField(default=False, help_text="Answer 202 at once.")
    on_disconnect = _on_disconnect_field()  # with `stream`, as for `agent/run/stream`

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["decision"] == "edit" and "args" not in attrs:
            raise serializers.ValidationError({"args": ["`edit` needs the new `args`."]})
        if attrs["decision"] != "edit" and ("args" in attrs or "tool_call_id" in attrs):
            raise serializers.ValidationError({"args": ["Only `edit` takes `args`."]})
        if attrs["stream"] and attrs["background"]:
            raise serializers.ValidationError(
                {"background": ["Choose `stream` or `background`, not both."]}
            )
        if "args" in attrs:
            try:
                json_value_check(attrs["args"], max_depth=METADATA_MAX_DEPTH)
            except UnstorableJSON as exc:
                raise serializers.ValidationError({"args": [f"Cannot be stored: {exc}."]}) from None
        return attrs


class RunAcceptedSerializer(serializers.Serializer):
    """``202``: a background run was recorded; follow it at ``/agent/runs/{run_id}``."""

    run_id = serializers.UUIDField(source="id", read_only=True)
    thread_id = serializers.UUIDField(read_only=True)
    status = serializers.ChoiceField(choices=AgentRun.Status.choices, read_only=True)


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)


class TraceUrlField(serializers.URLField):
    """The Langfuse page of the trace whose id is the source; null when the run was not traced."""

    def to_representation(self, value: Any) -> Any:
        return trace_url(str(value) if value else None)


class PendingToolCallSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    args = serializers.JSONField()


class InterruptSerializer(serializers.Serializer):
    """The calls an ``interrupted`` run waits to have approved."""

    tool_calls = PendingToolCallSerializer(many=True)


class RunResultSerializer(serializers.Serializer):
    """The seed's response body (of ``POST /agent/run`` and the ``done`` event), plus who
    answered and what it cost: the output of a finished ``AgentRun``."""

    response = serializers.CharField(read_only=True)
    thread_id = serializers.UUIDField(read_only=True)
    trace_id = BlankAsNullCharField(read_only=True, allow_null=True)
    run_id = serializers.UUIDField(source="id", read_only=True)
    latency_ms = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=AgentRun.Status.choices, read_only=True)
    plan = BlankAsNullCharField(read_only=True, allow_null=True)
    provider = serializers.CharField(read_only=True)
    model = serializers.CharField(read_only=True)
    trace_url = TraceUrlField(source="trace_id", read_only=True, allow_null=True)
    usage = UsageSerializer(source="*", read_only=True)
    interrupt = InterruptSerializer(read_only=True, allow_null=True)


class RunErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    status = serializers.CharField(default="error")
    run_id = serializers.UUIDField()
    thread_id = serializers.UUIDField()
    trace_id = serializers.CharField(allow_null=True)


class RunListSerializer(serializers.ModelSerializer):
    thread_id = serializers.UUIDField(read_only=True)
    user_id = serializers.UUIDField(read_only=True)
    trace_id = BlankAsNullCharField(read_only=True, allow_null=True)
    trace_url = serializers.SerializerMethodField()

    class Meta:
        model = AgentRun
        fields: tuple[str, ...] = (
            "id", "user_id", "thread_id", "input", "response", "status", "error", "latency_ms",
            "trace_id", "trace_url", "provider", "model", "prompt_tokens", "completion_tokens",
            "total_tokens", "created_at", "started_at", "finished_at",
        )  # fmt: skip
        read_only_fields: tuple[str, ...] = fields

    def get_trace_url(self, run: AgentRun) -> str | None:
        """Where the run's Langfuse trace is; null when the run was not traced."""
        return trace_url(run.trace_id or None)


class RunDetailSerializer(RunListSerializer):
    result = serializers.SerializerMethodField()

    class Meta(RunListSerializer.Meta):
        fields: tuple[str, ...] = (
            *RunListSerializer.Meta.fields, "plan", "tool_calls", "metadata", "background",
            "multitask_strategy", "cancel_requested", "interrupt", "decision", "resumed_from",
            "result",
        )  # fmt: skip
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field(RunResultSerializer(allow_null=True))
    def get_result(self, run: AgentRun) -> dict[str, Any] | None:
        """The body ``POST /agent/run`` answered (the error body for a failed run); null while
        the run is pending or running."""
        if run.status not in AgentRun.FINISHED:
            return None
        from agents.streaming import final_record

        return final_record(run)[1]


class RunFilterSerializer(serializers.Serializer):
    thread_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=AgentRun.Status.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    user = serializers.UUIDField(required=False, help_text="Superusers only: another user's runs.")


class ThreadSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentThread
        fields: tuple[str, ...] = ("id", "title", "created_at", "updated_at")
        read_only_fields: tuple[str, ...] = fields


class ThreadMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant", "tool"])
    content = serializers.CharField(allow_blank=True)
    tool_calls = serializers.ListField(child=serializers.DictField(), required=False)
    name = serializers.CharField(required=False, allow_null=True)
    tool_call_id = serializers.CharField(required=False)
    status = serializers.CharField(required=False)


class ThreadDetailSerializer(ThreadSerializer):
    messages = serializers.SerializerMethodField()

    class Meta(ThreadSerializer.Meta):
        fields: tuple[str, ...] = (*ThreadSerializer.Meta.fields, "messages")
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field(ThreadMessageSerializer(many=True))
    def get_messages(self, thread: AgentThread) -> list[dict[str, Any]]:
        return list(self.context.get("messages", []))


class ThreadUpdateSerializer(serializers.Serializer):
    """``PATCH agent/threads/{id}``: rename a conversation."""

    title = StrictCharField(
        max_length=AgentThread._meta.get_field("title").max_length,
        trim_whitespace=True,
        allow_blank=False,
    )
