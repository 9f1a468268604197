"""Domain errors of evaluations; the API's exception handler turns them into JSON responses.

The base class is imported here only (and re-exported for catching the agent's errors).
"""

from http import HTTPStatus

from core.errors import ApplicationError


class EvaluationError(ApplicationError):
    code = "evaluation_error"
    default_detail = "The evaluation could not be run."


class MetricInvalid(EvaluationError):
    """A metric file that cannot be used: unknown slot, bad front matter, empty prompt."""

    status_code = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "metric_invalid"


class UnknownMetric(EvaluationError):
    code = "unknown_metric"
    default_detail = "No such metric."


class RunNotFound(EvaluationError):
    status_code = HTTPStatus.NOT_FOUND
    code = "not_found"
    default_detail = "Run not found."


class JobNotFound(EvaluationError):
    status_code = HTTPStatus.NOT_FOUND
    code = "not_found"
    default_detail = "Evaluation job not found."


class DatasetInvalid(EvaluationError):
    code = "dataset_invalid"


class JudgeError(EvaluationError):
    """One judge call that gave no usable score (recorded as a failure, never raised to users)."""

    status_code = HTTPStatus.BAD_GATEWAY
    code = "judge_error"
    default_detail = "The judge did not give a usable score."


class JudgeAnswerInvalid(JudgeError):
    code = "judge_answer_invalid"
    default_detail = "The judge's answer has no score from 0 to 1."


class JudgeUnavailable(JudgeError):
    code = "judge_unavailable"
    default_detail = "The judge failed to answer after its retries."


__all__ = [
    "ApplicationError",
    "DatasetInvalid",
    "EvaluationError",
    "JobNotFound",
    "JudgeAnswerInvalid",
    "JudgeError",
    "JudgeUnavailable",
    "MetricInvalid",
    "RunNotFound",
    "UnknownMetric",
]
