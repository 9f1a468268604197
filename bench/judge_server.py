"""A judge for benchmarks: the tests' OpenAI-compatible fake server, answering every request
with a JSON verdict after ``--delay`` seconds. Prints ``port=N`` when ready; on SIGTERM prints
``requests=N max_in_flight=M`` and exits.

Usage: ``.venv/bin/python bench/judge_server.py --delay 0.1``
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testing.llm_server import FakeLLMServer, Reply  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    answer = json.dumps({"reasoning": "Clear, relevant and grounded.", "score": 0.8})
    with FakeLLMServer(port=args.port) as server:
        server.default_reply = Reply.text(
            answer, delay=args.delay, prompt_tokens=350, completion_tokens=25
        )
        print(f"port={server.port}", flush=True)
        stop.wait()
        print(f"requests={len(server.requests)} max_in_flight={server.max_in_flight}", flush=True)


if __name__ == "__main__":
    main()
