"""The agent's domain errors; ``core.exception_handler`` turns them into JSON responses."""

import sys
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
    """The run was stopped before it finished: its client disconnected, it was cancelled (the
    API, the admin), or a newer run on its thread interrupted or rolled it back."""

    status_code = HTTPStatus.CONFLICT
    code = "cancelled"
    default_detail = "The run was cancelled."


class TokenBudgetExceeded(ApplicationError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "token_budget_exceeded"
    default_detail = "The daily token budget is used up. Try again tomorrow (UTC)."

    def __init__(self, *, limit: int, used: int, retry_after: int, held: bool = False) -> None:
        if held:  # what is left is reserved by the user's runs in progress
            detail = (
                f"The rest of the daily token budget of {limit} tokens ({used} used today) is "
                "reserved by runs in progress. Try again when they finish."
            )
        else:
            detail = (
                f"The daily token budget of {limit} tokens is used up ({used} used today). "
                "It starts again at midnight UTC."
            )
        super().__init__(detail)
        # The API's exception handler puts an ApplicationError's ``headers`` on the response.
        self.headers = {"Retry-After": str(retry_after)}


class ThreadBusy(ApplicationError):
    """Another run of the thread is in progress: one run at a time per thread."""

    status_code = HTTPStatus.CONFLICT
    code = "thread_busy"
    default_detail = (
        "A run of this thread is in progress. Wait for it to finish, then send the message."
    )


class RunTimeout(AgentRunError):
    """The run went past ``AGENT_RUN_TIMEOUT_SECONDS``, its overall deadline."""

    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "run_timeout"
    default_detail = "The run did not finish in time and was stopped."


class RunDeleted(AgentRunError):
    """The run's thread (and with it the run) was deleted while the run executed."""

    status_code = HTTPStatus.CONFLICT
    code = "thread_deleted"
    default_detail = "The thread was deleted while the run was in progress; nothing was kept."


class DatabaseUnavailable(AgentRunError):
    """A query the run needed failed: the database went away (or dropped the connection)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "database_unavailable"
    default_detail = "The database was unavailable during the run. Try again."


class RunNotRecorded(AgentRunError):
    """The database refused the run's finish twice (a dropped connection, then its retry)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "run_not_recorded"
    default_detail = (
        "The run ended but the database could not record it; it will be recorded as "
        "abandoned. Try again later."
    )


class RunNotActive(ApplicationError):
    """Only a pending or running run can be cancelled."""

    status_code = HTTPStatus.CONFLICT
    code = "run_not_active"
    default_detail = "The run has already ended."


class ThreadInterrupted(ApplicationError):
    """The thread's last run waits for a person's approval (``multitask_strategy`` reject)."""

    status_code = HTTPStatus.CONFLICT
    code = "thread_interrupted"
    default_detail = (
        "The thread's last run is waiting for approval. Resume it (POST "
        "/api/v1/agent/runs/{id}/resume), or send the message with another multitask_strategy."
    )


class RunNotInterrupted(ApplicationError):
    """Only an interrupted run that nobody has decided on can be resumed."""

    status_code = HTTPStatus.CONFLICT
    code = "run_not_interrupted"
    default_detail = "The run is not waiting for approval (it was not interrupted, or was resumed)."


class RunAbandoned(AgentRunError):
    """The process executing the run stopped; the sweeper ended it (``agents.sweeper``)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "abandoned"
    default_detail = "The process executing the run stopped before it finished."


def error_for_record(*, error: str, extra: dict[str, object]) -> AgentRunError:
    """The domain error a finished run's ``error`` text (``"code: detail"``) stands for: what
    ``POST /agent/run`` answered, for those who ask later (``/wait``, the stream's end)."""
    code, _, detail = error.partition(":")
    classes = {cls.code: cls for cls in _run_error_classes(AgentRunError)}
    error_class = classes.get(code.strip(), AgentRunError)
    failure = error_class(detail.strip() or None)
    failure.extra = dict(extra)
    return failure


def _run_error_classes(base: type[AgentRunError]) -> list[type[AgentRunError]]:
    found = [base]
    for sub in base.__subclasses__():
        found.extend(_run_error_classes(sub))
    return found


def classify_exception(exc: BaseException) -> type[AgentRunError]:
    """Which domain error an exception raised inside the graph amounts to."""
    timeouts: list[type[BaseException]] = [TimeoutError]
    upstream: list[type[BaseException]] = []
    # Only the client libraries already imported can have raised: importing one here (the
    # Anthropic SDK takes seconds) would delay a cold worker's first failure by as much.
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        timeouts.append(httpx.TimeoutException)
        upstream.append(httpx.HTTPError)
    for name in ("openai", "anthropic"):
        sdk = sys.modules.get(name)
        if sdk is not None and hasattr(sdk, "APITimeoutError"):
            timeouts.append(sdk.APITimeoutError)
            upstream.append(sdk.APIError)
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


PROVIDER_NAMES = {
    "openai": "OpenAI",
    "azure": "Azure OpenAI",
    "anthropic": "Anthropic",
    "offline": "the offline model",
}
# Which settings connect each provider: named in errors a person can fix by changing them.
PROVIDER_KEY_SETTINGS = {
    "openai": "OPENAI_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
}


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first (cycles stop the walk)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _host_of(exc: BaseException) -> str:
    """host[:port] of the request that failed, never its user info, path or query."""
    for item in _causes(exc):
        request = getattr(item, "request", None)
        try:
            url = request.url if request is not None else None  # httpx raises without a request
        except RuntimeError:
            url = None
        if url is not None and getattr(url, "host", None):
            port = f":{url.port}" if url.port else ""
            return f"{url.host}{port}"
    return ""


def _status_of(exc: BaseException) -> int | None:
    for item in _causes(exc):
        status = getattr(item, "status_code", None)
        if isinstance(status, int):
            return status
        response = getattr(item, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _failure_kind(exc: BaseException, provider: str) -> str:
    import errno
    import socket

    chain = _causes(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or any(
        isinstance(e, OSError) and e.errno == errno.ECONNREFUSED for e in chain
    ):
        return "could not be reached: connection refused"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "could not be reached: its host name does not resolve"
    if classify_exception(exc) is LLMTimeout:
        return "did not answer in time (timeout)"
    status = _status_of(exc)
    key = PROVIDER_KEY_SETTINGS.get(provider, "the API key")
    if status in (401, 403):
        reason = "unauthorized" if status == 401 else "forbidden"
        return f"refused the credentials (HTTP {status} {reason}): check {key}"
    if status == 404:
        return "does not know this model or endpoint (HTTP 404): check LLM_MODEL_NAME"
    if status == 429:
        return "is rate limiting the requests or the quota is used up (HTTP 429)"
    if status is not None and status >= 500:
        return f"failed with a server error (HTTP {status})"
    if status is not None:
        return f"rejected the request (HTTP {status})"
    if any(type(e).__name__ in ("APIConnectionError", "ConnectError") for e in chain):
        return "could not be reached: the connection failed"
    return f"failed ({type(exc).__name__})"


def describe_llm_failure(exc: BaseException, *, provider: str, model: str) -> str:
    """What went wrong with the language model, for a person to act on: the provider, the
    model, where it was called and the kind of failure (connection refused, timeout, 401, 429,
    5xx). Built from exception types and status codes only: a provider's error text can echo
    parts of a key, so none of it is quoted."""
    name = PROVIDER_NAMES.get(provider, provider or "The language model")
    host = _host_of(exc)
    where = f" at {host}" if host else ""
    kind = _failure_kind(exc, provider)
    return f"The language model failed to answer: {name} model {model}{where} {kind}."
