"""Input and output serializers of the evaluations API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from evaluations.models import AgentEvaluation, EvaluationJob

MAX_RUN_IDS = 1000


class StrictFloatField(serializers.FloatField):
    """A JSON number only: "0.5" or true is refused, not coerced."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class EvaluationRequestSerializer(serializers.Serializer):
    run_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, allow_empty=False, max_length=MAX_RUN_IDS
    )
    since = serializers.CharField(
        required=False, max_length=16, help_text="How far back: 24h (default), 7d, 90m."
    )
    metrics = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, allow_empty=False
    )


class EvaluationFilterSerializer(serializers.Serializer):
    run_id = serializers.UUIDField(required=False)
    metric = serializers.CharField(required=False, max_length=64)
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a field, not Field.source
        choices=AgentEvaluation.Source.choices, required=False
    )


class EvaluationSerializer(serializers.ModelSerializer):
    run_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = AgentEvaluation
        fields = ("id", "run_id", "metric_name", "score", "source", "eval_metadata", "created_at")
        read_only_fields = fields


class JobProgressSerializer(serializers.Serializer):
    completed = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.FloatField()


class JobAcceptedSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    status = serializers.CharField()


class JobSerializer(serializers.ModelSerializer):
    job_id = serializers.UUIDField(source="id", read_only=True)
    progress = JobProgressSerializer(read_only=True)
    requested_by = serializers.UUIDField(source="requested_by_id", read_only=True, allow_null=True)

    class Meta:
        model = EvaluationJob
        fields = (
            "job_id", "status", "progress", "params", "report", "error", "requested_by",
            "backend", "created_at", "started_at", "finished_at",
        )  # fmt: skip
        read_only_fields = fields


class FeedbackInputSerializer(serializers.Serializer):
    score = StrictFloatField(min_value=0.0, max_value=1.0)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
