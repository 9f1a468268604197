"""The benchmarks' LLM: ``testing.llm_server.FakeLLMServer`` answering like a model that plans,
calls one tool, then answers, with a configurable latency and streaming speed.

For each ``chat.completions`` request: without ``tools`` (the planner) a short plan; with tools
and a user turn last (the executor's first step) a call of ``--tool``; with a tool result last
(the executor's second step) the answer, ``--answer-words`` words long. ``--latency`` is the wait
before the first byte of every reply, ``--chunk-delay`` the wait between streamed chunks.

``GET /v1/bench/timings`` returns (and forgets) what each answered request cost at this end:
``[{"tag", "arrived", "first_token", "finished"}]`` in ``time.monotonic()`` seconds, which other
processes of the machine can compare with theirs. ``tag`` is the ``[bench:<tag>]`` marker of the
conversation's last user message, so a load generator can add up the LLM's own time per run.

    .venv/bin/python bench/llm_server.py --port 8090 --latency 0.2
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testing.llm_server import FakeLLMServer, Reply, _Handler, _HTTPServer  # noqa: E402

TAG = re.compile(r"\[bench:([^\]]+)\]")
PLAN = "1. List the users with list_users. 2. Answer with what it returned."


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def tag_of(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    found = TAG.search(_text(users[-1].get("content"))) if users else None
    return found.group(1) if found else ""


class AgentLikeResponder:
    """Plan, call ``tool``, answer: the replies of a run through planner → executor → tool."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        tool: str = "list_users",
        answer_words: int = 40,
    ) -> None:
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.tool = tool
        self.answer = " ".join(f"word{i}" for i in range(answer_words))

    def __call__(self, body: dict[str, Any]) -> Reply:
        delay, chunk_delay = self.latency, self.chunk_delay
        messages = body.get("messages") or []
        if not body.get("tools"):
            return Reply(PLAN, [], 120, 18, delay, chunk_delay)
        if messages and messages[-1].get("role") == "tool":
            return Reply(self.answer, [], 260, 45, delay, chunk_delay)
        return Reply("", [(self.tool, {"limit": 5})], 200, 12, delay, chunk_delay)


class _BenchHandler(_Handler):
    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/bench/timings":
            super().do_GET()
            return
        owner = self.server.owner
        with owner._lock:
            taken, owner.timings = owner.timings, []
        rows = [
            {"tag": tag_of(body), "arrived": a, "first_token": f, "finished": e}
            for body, a, f, e in taken
        ]
        self._send_json(200, rows)


class _BenchHTTPServer(_HTTPServer):
    def __init__(self, address: tuple[str, int], owner: FakeLLMServer) -> None:
        super(_HTTPServer, self).__init__(address, _BenchHandler)
        self.owner = owner
        self._connections = set()
        self._conn_lock = threading.Lock()
        self.request_queue_size = 256


class BenchLLMServer(FakeLLMServer):
    """A ``FakeLLMServer`` with the agent-like responder and the timings endpoint."""

    def __init__(self, responder: AgentLikeResponder, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.responder = responder
        self.record_timings = True

    def start(self) -> BenchLLMServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _BenchHTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        assert self.responder is not None
        return self.responder(body)  # no request log: it would grow without bound


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmarks' OpenAI-compatible LLM server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--tool", default="list_users")
    parser.add_argument("--answer-words", type=int, default=40)
    args = parser.parse_args()
    responder = AgentLikeResponder(
        latency=args.latency,
        chunk_delay=args.chunk_delay,
        tool=args.tool,
        answer_words=args.answer_words,
    )
    server = BenchLLMServer(responder, args.host, args.port).start()
    print(json.dumps({"base_url": server.base_url}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
