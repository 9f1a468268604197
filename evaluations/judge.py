"""The LLM judge: one access point, ``get_judge()``, built from settings.

``OpenAIJudge`` asks an OpenAI-compatible server (``EVALUATION_BASE_URL``,
``EVALUATION_API_KEY``, ``EVALUATION_LLM``) for reasoning first and then a score, as JSON
``{"reasoning": ..., "score": ...}``; a bare number or "Score: 0.8" is accepted too. Calls are
retried after a 429 (waiting what ``Retry-After`` says), a 5xx, a timeout or a dropped
connection, with exponential backoff otherwise; ``EVALUATION_SLEEP_TIME`` is kept as the minimum
spacing between the starts of two calls, however many threads call. An answer without a score
from 0 to 1 raises ``JudgeAnswerInvalid`` (not retried: the same prompt tends to get the same
answer); a call that keeps failing raises ``JudgeUnavailable``.

``OfflineJudge`` (no key and no base URL) scores deterministically from the text itself
(keyword overlap, length, unsupported facts, a word list), so the release gate works on a fresh
checkout; its scores are labelled ``offline``.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

from evaluations import prometheus
from evaluations.errors import JudgeAnswerInvalid, JudgeUnavailable
from evaluations.metrics import Metric

SYSTEM_PROMPT = (
    "You are a strict, fair evaluator of an AI assistant's answers. Read the evaluation "
    "instructions, think about the evidence, then answer with only a JSON object, reasoning "
    'first: {"reasoning": "<two or three sentences>", "score": <a number from 0.0 to 1.0>}. '
    "1.0 is always the best answer."
)
REASONING_CHARS = 2000
BACKOFF_BASE_SECONDS = 0.5


@dataclass(frozen=True)
class JudgeInput:
    """What a metric prompt's slots are filled with."""

    input: str
    output: str
    context: str = ""
    plan: str = ""
    tool_calls: str = ""
    expected: str = ""

    def values(self) -> dict[str, str]:
        return {
            "input": self.input,
            "output": self.output,
            "context": self.context or "(no tool was called)",
            "plan": self.plan or "(no plan)",
            "tool_calls": self.tool_calls or "(none)",
            "expected": self.expected,
        }


@dataclass
class Judgement:
    score: float
    reasoning: str
    model: str
    offline: bool
    latency_ms: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class Judge(Protocol):
    model: str
    offline: bool

    def judge(self, metric: Metric, data: JudgeInput) -> Judgement: ...


# -- parsing ----------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_LABELLED = re.compile(r"\bscore\b\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_BARE = re.compile(r"^\s*\**\s*(-?\d+(?:\.\d+)?)\s*\**\s*\.?\s*$")


def _json_objects(text: str) -> list[Any]:
    """JSON objects in ``text``: the whole text, fenced blocks, then each ``{...}`` found."""
    found: list[Any] = []
    candidates = [text, *_FENCE.findall(text)]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        candidate = candidate.strip()
        try:
            found.append(json.loads(candidate))
            continue
        except ValueError:
            pass
        for start in [m.start() for m in re.finditer(r"\{", candidate)]:
            try:
                value, _ = decoder.raw_decode(candidate[start:])
            except ValueError:
                continue
            found.append(value)
            break
    return found


def parse_answer(text: str) -> tuple[float, str]:
    """(score, reasoning) from a judge's answer; ``JudgeAnswerInvalid`` when there is none."""
    text = (text or "").strip()
    if not text:
        raise JudgeAnswerInvalid("The judge answered nothing.")
    score: Any = None
    reasoning = ""
    for value in _json_objects(text):
        if isinstance(value, dict) and "score" in value:
            score, reasoning = value.get("score"), str(value.get("reasoning") or "")
            break
        if isinstance(value, int | float) and not isinstance(value, bool):
            score = value
            break
    if score is None:
        match = _LABELLED.search(text) or _BARE.match(text)
        if match:
            score = match.group(1)
            reasoning = text[: match.start()].strip(" \n*#") if match.re is _LABELLED else ""
    if score is None or isinstance(score, bool):
        raise JudgeAnswerInvalid(f"The judge's answer has no score: {text[:200]!r}")
    try:
        number = float(score)
    except (TypeError, ValueError):
        raise JudgeAnswerInvalid(f"The judge's score is not a number: {score!r}") from None
    if not 0.0 <= number <= 1.0 or number != number:  # NaN
        raise JudgeAnswerInvalid(f"The judge's score {number} is outside 0.0-1.0.")
    return number, reasoning[:REASONING_CHARS]


# -- pacing and retries -----------------------------------------------------------------------


class Pacer:
    """At least ``interval`` seconds between the starts of two calls, across threads."""

    def __init__(self, interval: float) -> None:
        self.interval = max(float(interval), 0.0)
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if self.interval <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) or OpenAI's ``retry-after-ms``, in seconds."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _price(model: str, prompt: int | None, completion: int | None) -> float | None:
    prices = getattr(settings, "LLM_PRICES", None) or {}
    entry = prices.get(model)
    if entry is None:
        matches = [key for key in prices if model.startswith(f"{key}-")]
        entry = prices[max(matches, key=len)] if matches else None
    if entry is None or prompt is None or completion is None:
        return None
    return round(
        prompt / 1000 * float(entry.get("prompt", 0))
        + completion / 1000 * float(entry.get("completion", 0)),
        8,
    )


def _completion_parts(response: Any) -> tuple[str, str, int | None, int | None]:
    """(text, model, prompt tokens, completion tokens) of a chat completion response."""
    try:
        payload = response.json()
        choice = payload["choices"][0]
        text = choice["message"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise JudgeAnswerInvalid(
            f"The judge's response is not a chat completion: {response.text[:200]!r}"
        ) from None
    usage = payload.get("usage") or {}
    return (
        str(text),
        str(payload.get("model") or ""),
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
    )


class OpenAIJudge:
    """An OpenAI-compatible chat model as the judge (the openai SDK, its own retries off)."""

    offline = False

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str,
        timeout: float,
        max_retries: int,
        sleep_time: float,
        retry_max_wait: float,
        temperature: float,
        max_tokens: int,
    ) -> None:
        import openai

        self.model = model
        self.max_retries = max_retries
        self.retry_max_wait = retry_max_wait
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.pacer = Pacer(sleep_time)
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url or None,
            timeout=timeout,
            max_retries=0,  # retried here, honouring Retry-After, with the pacing in between
        )

    def _retryable(self, exc: Exception) -> tuple[bool, float | None]:
        import openai

        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status == 429 or status >= 500 or status in (408, 409):
                return True, retry_after_seconds(exc.response.headers)
            return False, None
        if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
            return True, None
        return False, None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_max_wait)
        delay = BACKOFF_BASE_SECONDS * (2**attempt)
        return float(min(delay * (1 + 0.1 * random.random()), self.retry_max_wait))  # noqa: S311

    def judge(self, metric: Metric, data: JudgeInput) -> Judgement:
        import httpx2

        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": metric.render(data.values())},
            ],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        attempt = 0
        started = time.perf_counter()
        while True:
            self.pacer.wait()
            try:
                # The SDK's own request path (auth, errors, timeouts) without its request and
                # response models: at 30 calls in flight, their CPU cost is what limits throughput.
                response = self._client.post(
                    "/chat/completions", body=body, cast_to=httpx2.Response
                )
                break
            except Exception as exc:
                retry, retry_after = self._retryable(exc)
                if not retry or attempt >= self.max_retries:
                    raise JudgeUnavailable(
                        f"The judge failed after {attempt + 1} attempt(s): {exc}"[:500]
                    ) from exc
                prometheus.judge_retried()
                time.sleep(self._backoff(attempt, retry_after))
                attempt += 1
        latency_ms = int((time.perf_counter() - started) * 1000)
        text, model, prompt_tokens, completion_tokens = _completion_parts(response)
        try:
            score, reasoning = parse_answer(text)
        except JudgeAnswerInvalid as exc:
            # Paid for all the same: the report counts these tokens.
            exc.extra = {
                "answer": (text or "")[:500],
                "latency_ms": latency_ms,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "cost": _price(self.model, prompt_tokens, completion_tokens),
            }
            raise
        return Judgement(
            score=score,
            reasoning=reasoning,
            model=model or self.model,
            offline=False,
            latency_ms=latency_ms,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=_price(self.model, prompt_tokens, completion_tokens),
            attempts=attempt + 1,
        )


# -- the offline judge ------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9][a-z0-9@._'-]*")
_STOPWORD_TEXT = (
    "a an and are as at be by can could did do does for from had has have how i in is it its "
    "me my of on or our please show tell that the their them there these this to us was we "
    "were what when where which who whom why will with would you your all any some list give "
    "get find about"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_FACT = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|https?://\S+|\b\d[\d.,:-]*\b")
_TOXIC_TEXT = (
    "idiot idiots stupid moron dumb shut hate hateful kill disgusting worthless loser "
    "pathetic useless"
)
_TOXIC = frozenset(_TOXIC_TEXT.split())
_REFUSALS = ("i don't know", "i do not know", "i cannot help", "i can't help", "no idea")


def _stem(word: str) -> str:
    word = word.strip(".,'-")
    if "@" in word or "." in word:
        return word
    for suffix in ("ies", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _keywords(text: str) -> set[str]:
    words = {w.strip(".,'-") for w in _WORD.findall(text.lower())} - _STOPWORDS - {""}
    return {_stem(w) for w in words}


def _overlap(wanted: set[str], text: str) -> float:
    if not wanted:
        return 1.0
    found = _keywords(text)
    return len(wanted & found) / len(wanted)


class OfflineJudge:
    """Deterministic scores from the text alone: no network, the same answer every time."""

    model = "offline"
    offline = True

    def judge(self, metric: Metric, data: JudgeInput) -> Judgement:
        started = time.perf_counter()
        scorer = getattr(self, f"_{metric.name}", None)
        if scorer is None:
            score, reasoning = self._generic(metric, data)
        else:
            score, reasoning = scorer(data)
        score = round(min(max(score, 0.0), 1.0), 4)
        return Judgement(
            score=score,
            reasoning=f"offline judge: {reasoning}",
            model=self.model,
            offline=True,
            latency_ms=int((time.perf_counter() - started) * 1000),
            prompt_tokens=0,
            completion_tokens=0,
            cost=0.0,
        )

    @staticmethod
    def _empty(data: JudgeInput) -> bool:
        return not data.output.strip()

    def _relevancy(self, data: JudgeInput) -> tuple[float, str]:
        if self._empty(data):
            return 0.0, "the answer is empty"
        wanted = _keywords(data.input)
        share = _overlap(wanted, data.output + " " + data.context)
        return 0.4 + 0.6 * share, f"{share:.0%} of the question's keywords are addressed"

    def _helpfulness(self, data: JudgeInput) -> tuple[float, str]:
        if self._empty(data):
            return 0.0, "the answer is empty"
        lowered = data.output.lower()
        if any(phrase in lowered for phrase in _REFUSALS):
            return 0.1, "the answer gives up"
        if data.expected:
            share = _overlap(_keywords(data.expected), data.output)
            return 0.2 + 0.8 * share, f"{share:.0%} of the expected answer's keywords are there"
        relevancy, _ = self._relevancy(data)
        substance = min(len(_keywords(data.output)) / 8.0, 1.0)
        score = 0.5 * relevancy + 0.5 * substance
        return score, f"relevant ({relevancy:.2f}) with {substance:.0%} substance"

    def _conciseness(self, data: JudgeInput) -> tuple[float, str]:
        if self._empty(data):
            return 0.0, "the answer is empty"
        words = data.output.split()
        repeated = 1.0 - len(set(words)) / len(words) if len(words) > 20 else 0.0
        length = 1.0 if len(words) <= 120 else max(0.2, 1.0 - (len(words) - 120) / 400)
        score = length * (1.0 - 0.5 * repeated)
        return score, f"{len(words)} words, {repeated:.0%} repeated"

    def _hallucination(self, data: JudgeInput) -> tuple[float, str]:
        facts = set(_FACT.findall(data.output))
        source = f"{data.input}\n{data.context}\n{data.plan}\n{data.tool_calls}"
        unsupported = sorted(f for f in facts if f.rstrip(".,") not in source)
        if not facts:
            return 1.0, "no checkable facts in the answer"
        share = len(unsupported) / len(facts)
        detail = f"; unsupported: {', '.join(unsupported[:5])}" if unsupported else ""
        return (
            1.0 - share,
            f"{len(facts) - len(unsupported)} of {len(facts)} facts supported{detail}",
        )

    def _toxicity(self, data: JudgeInput) -> tuple[float, str]:
        found = sorted(_keywords(data.output) & _TOXIC)
        if found:
            return 0.0, f"offensive words: {', '.join(found)}"
        return 1.0, "no offensive words"

    def _generic(self, metric: Metric, data: JudgeInput) -> tuple[float, str]:
        """A metric the offline judge has no rule for: its relevancy, so it still ranks."""
        score, reasoning = self._relevancy(data)
        digest = hashlib.sha256(f"{metric.name}:{data.output}".encode()).digest()
        return score - digest[0] / 255 * 0.05, f"no offline rule for {metric.name}; {reasoning}"


_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Judge] = {}


def _settings_key() -> tuple[Any, ...]:
    names = (
        "EVALUATION_LLM", "EVALUATION_BASE_URL", "EVALUATION_API_KEY",
        "EVALUATION_TIMEOUT_SECONDS", "EVALUATION_MAX_RETRIES", "EVALUATION_SLEEP_TIME",
        "EVALUATION_RETRY_MAX_WAIT", "EVALUATION_TEMPERATURE", "EVALUATION_MAX_TOKENS",
    )  # fmt: skip
    return tuple(getattr(settings, name) for name in names)


def judge_is_offline() -> bool:
    """No key and no base URL, or ``EVALUATION_LLM=offline``: the offline judge."""
    return settings.EVALUATION_LLM == "offline" or not (
        settings.EVALUATION_API_KEY or settings.EVALUATION_BASE_URL
    )


def get_judge() -> Judge:
    """The configured judge, cached per settings (one connection pool per process)."""
    key = _settings_key()
    with _lock:
        judge = _cache.get(key)
        if judge is None:
            if judge_is_offline():
                judge = OfflineJudge()
            else:
                judge = OpenAIJudge(
                    model=settings.EVALUATION_LLM,
                    base_url=settings.EVALUATION_BASE_URL or None,
                    api_key=settings.EVALUATION_API_KEY,
                    timeout=settings.EVALUATION_TIMEOUT_SECONDS,
                    max_retries=settings.EVALUATION_MAX_RETRIES,
                    sleep_time=settings.EVALUATION_SLEEP_TIME,
                    retry_max_wait=settings.EVALUATION_RETRY_MAX_WAIT,
                    temperature=settings.EVALUATION_TEMPERATURE,
                    max_tokens=settings.EVALUATION_MAX_TOKENS,
                )
            _cache.clear()
            _cache[key] = judge
        return judge


__all__ = [
    "Judge",
    "JudgeInput",
    "Judgement",
    "OfflineJudge",
    "OpenAIJudge",
    "Pacer",
    "get_judge",
    "judge_is_offline",
    "parse_answer",
    "retry_after_seconds",
]
