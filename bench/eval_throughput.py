"""Benchmark: the evaluator's throughput against a judge with a fixed latency.

Stores ``--runs`` successful runs (1,000 by default) in a throw-away database, starts
``bench/judge_server.py`` in its own process (every answer after ``--judge-delay`` s, 0.1 by
default), and times ``evaluations.evaluator.evaluation_run`` on all five metrics at
``--concurrency`` (32). The ideal is calls x delay / concurrency (1,000 x 5 x 0.1 / 32 = 15.6 s);
the target is within 1.3x of it. Then a rerun, which must make no call at all.

Usage: ``.venv/bin/python bench/eval_throughput.py [--database-url URL] [--runs N]
[--concurrency C] [--judge-delay S]``. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def start_judge(delay: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "judge_server.py"), "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("port="):
        raise RuntimeError(f"the judge server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split('=', 1)[1]}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--judge-delay", type=float, default=0.1)
    args = parser.parse_args()

    judge, judge_url = start_judge(args.judge_delay)
    tmp = Path(tempfile.mkdtemp(prefix="agents-eval-bench-"))
    os.environ.update(
        {
            "APP_ENV": "local",
            "DEBUG": "false",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'db.sqlite3'}",
            "AGENT_CHECKPOINT_SQLITE_PATH": str(tmp / "checkpoints.sqlite3"),
            "REDIS_URL": "",
            "REDIS_HOST": "",
            "LOG_LEVEL": "WARNING",
            "LANGFUSE_ENABLED": "false",
            "EVALUATION_BASE_URL": judge_url,
            "EVALUATION_API_KEY": "bench",
            "EVALUATION_LLM": "judge-bench",
            "EVALUATION_SLEEP_TIME": "0",
            "EVALUATION_REPORTS_DIR": str(tmp / "reports"),
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import User
    from agents.models import AgentRun, AgentThread
    from evaluations import evaluator
    from evaluations.models import AgentEvaluation

    call_command("migrate", verbosity=0)
    AgentEvaluation.objects.all().delete()
    AgentRun.objects.all().delete()
    user = User.objects.create_user(email=f"bench-{time.time_ns()}@example.com", password="x")
    thread = AgentThread.objects.create(owner=user, title="bench")
    tool_output = '{"user": {"email": "ada@example.com", "full_name": "Ada Lovelace"}}'
    AgentRun.objects.bulk_create(
        AgentRun(
            user=user,
            thread=thread,
            input=f"Question {n}: who is ada@example.com?",
            response="Ada Lovelace (ada@example.com).",
            plan="1. Look the user up.\n2. Answer.",
            status=AgentRun.Status.SUCCESS,
            tool_calls=[
                {
                    "name": "lookup_user_by_email",
                    "args": {"email": "ada@example.com"},
                    "ok": True,
                    "output": tool_output,
                    "duration_ms": 3,
                }
            ],
        )
        for n in range(args.runs)
    )
    calls = args.runs * 5
    ideal = calls * args.judge_delay / args.concurrency
    try:
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        report = evaluator.evaluation_run(concurrency=args.concurrency)
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
            cpu_before.ru_utime + cpu_before.ru_stime
        )
        rerun_started = time.perf_counter()
        rerun = evaluator.evaluation_run(concurrency=args.concurrency, write_report=False)
        rerun_elapsed = time.perf_counter() - rerun_started
    finally:
        judge.terminate()
        stats = judge.communicate(timeout=10)[0].strip()
    stored = AgentEvaluation.objects.count()
    print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}")
    print(f"runs={args.runs} metrics=5 judge calls={report['judge_calls']} "
          f"(failed {report['failed_judge_calls']}) stored={stored}")  # fmt: skip
    print(f"judge delay={args.judge_delay}s concurrency={args.concurrency} server: {stats}")
    print(f"elapsed={elapsed:.2f}s ideal={ideal:.2f}s ratio={elapsed / ideal:.3f} "
          f"({report['judge_calls'] / elapsed:.0f} calls/s)")  # fmt: skip
    print(f"evaluator CPU: {cpu:.1f}s ({cpu / max(report['judge_calls'], 1) * 1000:.2f} ms a call)")
    print(f"rerun: {rerun['judge_calls']} calls in {rerun_elapsed:.2f}s")
    ok = report["judge_calls"] == calls and stored == calls and elapsed <= 1.3 * ideal
    print("PASS" if ok and rerun["judge_calls"] == 0 else "FAIL: outside 1.3x the ideal")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
