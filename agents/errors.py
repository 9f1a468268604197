"""The agent's domain errors; ``core.exception_handler`` turns them into JSON responses."""

from http import HTTPStatus
from types import TracebackType

from core.errors import ApplicationError


class ThreadNotFound(ApplicationError):
    status_code = HTTPStatus.NOT_FOUND
    code = "not_found"
    default_detail = "Thread not found."


class AgentRunError(ApplicationError):
    """A run that started and failed. ``extra`` carries status, run_id and thread_id."""

    status_code = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "agent_error"
    default_detail = "The agent failed to answer."


class LLMUnavailable(AgentRunError):
    status_code = HTTPStatus.BAD_GATEWAY
    code = "llm_unavailable"
    default_detail = "The language model failed to answer. Try again later."


class LLMTimeout(AgentRunError):
    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "llm_timeout"
    default_detail = "The language model did not answer in time. Try again later."


class StepLimitExceeded(AgentRunError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "step_limit_exceeded"
    default_detail = "The agent reached its step limit before it could answer."


class RunCancelled(AgentRunError):
    status_code = 499  # type: ignore[assignment]  # "client closed request", as nginx logs it
    code = "cancelled"
    default_detail = "The client disconnected; the run was stopped."


class TokenBudgetExceeded(ApplicationError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "token_budget_exceeded"
    default_detail = "The daily token budget is used up. Try again tomorrow (UTC)."

    def __init__(self, *, limit: int, used: int, retry_after: int) -> None:
        super().__init__(
            f"The daily token budget of {limit} tokens is used up ({used} used today). "
            "It starts again at midnight UTC."
        )
        # The API's exception handler puts an ApplicationError's ``headers`` on the response.
        self.headers = {"Retry-After": str(retry_after)}


def classify_exception(exc: BaseException) -> type[AgentRunError]:
    """Which domain error an exception raised inside the graph amounts to."""
    timeouts: list[type[BaseException]] = [TimeoutError]
    upstream: list[type[BaseException]] = []
    try:
        import httpx

        timeouts.append(httpx.TimeoutException)
        upstream.append(httpx.HTTPError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import openai

        timeouts.append(openai.APITimeoutError)
        upstream.append(openai.APIError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import anthropic

        timeouts.append(anthropic.APITimeoutError)
        upstream.append(anthropic.APIError)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, tuple(timeouts)):
        return LLMTimeout
    if isinstance(exc, tuple(upstream)) or _malformed_llm_output(exc):
        return LLMUnavailable
    return AgentRunError


# The client libraries that turn an LLM's HTTP answer into messages.
LLM_CLIENT_MODULES = ("openai", "anthropic", "langchain_openai", "langchain_anthropic", "httpx")
# What they raise when the answer is not what the protocol says (malformed JSON, a body of the
# wrong shape, a field of the wrong type): the upstream's fault, a 502 like an HTTP error.
MALFORMED_OUTPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # json.JSONDecodeError, pydantic's ValidationError
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
)


def _malformed_llm_output(exc: BaseException) -> bool:
    """A decoding or shape error raised inside an LLM client library (not by our own code)."""
    if not isinstance(exc, MALFORMED_OUTPUT_ERRORS):
        return False
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in LLM_CLIENT_MODULES:
            return True
        tb = tb.tb_next
    return False
