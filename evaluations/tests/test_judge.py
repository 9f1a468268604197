"""The judge against a real OpenAI-compatible HTTP server: scores, reasoning, garbage, 429 with
Retry-After, 5xx, spacing; and the offline judge."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from evaluations.errors import JudgeAnswerInvalid, JudgeUnavailable
from evaluations.judge import (
    SYSTEM_PROMPT,
    JudgeInput,
    OfflineJudge,
    get_judge,
    parse_answer,
    retry_after_seconds,
)
from evaluations.metrics import select_metrics
from evaluations.tests.conftest import verdict
from testing.llm_server import Reply

DATA = JudgeInput(
    input="Who is ada@example.com?",
    output="Ada Lovelace (ada@example.com).",
    context='[lookup_user_by_email] {"user": {"email": "ada@example.com", "full_name": "Ada"}}',
    plan="1. Look the user up.",
    tool_calls='1. lookup_user_by_email({"email": "ada@example.com"}) -> ok',
)


@pytest.mark.parametrize(
    ("answer", "score", "reasoning"),
    [
        ('{"reasoning": "Clear and correct.", "score": 0.9}', 0.9, "Clear and correct."),
        ('```json\n{"reasoning": "ok", "score": 1}\n```', 1.0, "ok"),
        ('Let me think. {"reasoning": "partly", "score": 0.4} Done.', 0.4, "partly"),
        ("The answer is mostly right.\nScore: 0.8", 0.8, "The answer is mostly right."),
        ("**Score:** 0.25", 0.25, ""),
        ("0.7", 0.7, ""),
        ("1", 1.0, ""),
    ],
)
def test_answers_that_carry_a_score(answer: str, score: float, reasoning: str) -> None:
    assert parse_answer(answer) == (score, reasoning)


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "I think it is good.",
        '{"reasoning": "no score here"}',
        '{"reasoning": "too high", "score": 7}',
        "Score: 1.5",
        "-0.2",
        '{"reasoning": "x", "score": "high"}',
        '{"reasoning": "x", "score": true}',
    ],
)
def test_answers_without_a_usable_score_are_invalid(answer: str) -> None:
    with pytest.raises(JudgeAnswerInvalid):
        parse_answer(answer)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < (retry_after_seconds({"retry-after": later}) or 0) <= 30
    assert retry_after_seconds({}) is None


def test_a_good_verdict_with_reasoning_tokens_and_cost(judge_server) -> None:
    judge_server.enqueue(
        verdict(0.9, "Grounded in the lookup.", prompt_tokens=300, completion_tokens=40)
    )
    metric = select_metrics(["hallucination"])[0]
    judgement = get_judge().judge(metric, DATA)
    assert judgement.score == 0.9
    assert judgement.reasoning == "Grounded in the lookup."
    assert not judgement.offline
    assert (judgement.prompt_tokens, judgement.completion_tokens) == (300, 40)
    assert judgement.cost == pytest.approx(300 / 1000 * 0.001 + 40 / 1000 * 0.002)
    sent = judge_server.requests[0]
    assert sent["model"] == "judge-test"
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    prompt = sent["messages"][1]["content"]
    # The slots are filled from the run: the facts the tools returned, the plan, the calls.
    assert '"full_name": "Ada"' in prompt
    assert "1. Look the user up." in prompt
    assert "lookup_user_by_email" in prompt
    assert "Ada Lovelace" in prompt
    assert "{" + "context}" not in prompt


def test_garbage_is_invalid_and_not_retried(judge_server) -> None:
    judge_server.enqueue(Reply.text("What a lovely answer!"))
    with pytest.raises(JudgeAnswerInvalid):
        get_judge().judge(select_metrics(["helpfulness"])[0], DATA)
    assert len(judge_server.requests) == 1


def test_429_waits_what_retry_after_says(judge_server) -> None:
    judge_server.enqueue(Reply.error(429, "slow down", headers={"Retry-After": "1"}), verdict(0.6))
    judgement = get_judge().judge(select_metrics(["helpfulness"])[0], DATA)
    assert judgement.score == 0.6
    assert judgement.attempts == 2
    first, second = judge_server.received_at
    assert second - first >= 0.95


def test_5xx_is_retried_with_backoff_then_given_up(judge_server, settings) -> None:
    judge_server.enqueue(Reply.error(503), Reply.error(500), verdict(0.5))
    assert get_judge().judge(select_metrics(["relevancy"])[0], DATA).score == 0.5
    assert len(judge_server.requests) == 3
    gaps = [
        b - a for a, b in zip(judge_server.received_at, judge_server.received_at[1:], strict=False)
    ]
    assert gaps[0] >= 0.45
    assert gaps[1] >= 0.95

    judge_server.reset()
    judge_server.default_reply = Reply.error(502)
    with pytest.raises(JudgeUnavailable, match="after 3 attempt"):
        get_judge().judge(select_metrics(["relevancy"])[0], DATA)
    assert len(judge_server.requests) == 3  # EVALUATION_MAX_RETRIES = 2


def test_a_client_error_is_not_retried(judge_server) -> None:
    judge_server.enqueue(Reply.error(401, "bad key"))
    with pytest.raises(JudgeUnavailable):
        get_judge().judge(select_metrics(["relevancy"])[0], DATA)
    assert len(judge_server.requests) == 1


def test_sleep_time_spaces_the_calls_of_every_thread(judge_server, settings) -> None:
    settings.EVALUATION_SLEEP_TIME = 0.3
    judge = get_judge()
    metric = select_metrics(["relevancy"])[0]
    judge.judge(metric, DATA)  # warm up: the client's first request costs extra time
    judge_server.reset()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: judge.judge(metric, DATA), range(4)))
    times = sorted(judge_server.received_at)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4
    assert min(gaps) >= 0.2, gaps  # 0.3 s apart at the client, give or take the network
    assert times[-1] - times[0] >= 0.8, gaps


def test_calls_from_threads_overlap_on_the_server(judge_server) -> None:
    judge_server.default_reply = verdict(0.8, delay=0.3)
    judge = get_judge()
    metric = select_metrics(["relevancy"])[0]
    barrier = threading.Barrier(4)

    def call(_: int) -> float:
        barrier.wait()
        return judge.judge(metric, DATA).score

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(call, range(4))) == [0.8] * 4
    assert judge_server.max_in_flight == 4


def test_offline_judge_is_deterministic_and_labelled(settings) -> None:
    settings.EVALUATION_BASE_URL = ""
    settings.EVALUATION_API_KEY = ""
    judge = get_judge()
    assert isinstance(judge, OfflineJudge)
    assert judge.offline
    metrics = {m.name: m for m in select_metrics(None)}
    good = judge.judge(metrics["hallucination"], DATA)
    assert good.score == 1.0
    assert good.reasoning.startswith("offline judge:")
    invented = JudgeInput(
        input=DATA.input, output="Ada, born 1815, ada@example.org", context=DATA.context
    )
    assert judge.judge(metrics["hallucination"], invented).score == 0.0
    rude = JudgeInput(input="hi", output="Shut up, you idiot.")
    assert judge.judge(metrics["toxicity"], rude).score == 0.0
    assert judge.judge(metrics["toxicity"], DATA).score == 1.0
    assert judge.judge(metrics["helpfulness"], JudgeInput(input="hi", output="")).score == 0.0
    assert judge.judge(metrics["relevancy"], DATA) == judge.judge(metrics["relevancy"], DATA)
