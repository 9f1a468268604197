"""``manage.py evaluate``: judge recent runs (or a dataset) on the metric prompts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.tracing import flush_langfuse
from evaluations import evaluator, services
from evaluations.errors import EvaluationError
from evaluations.judge import get_judge


def _fail_under(values: list[str]) -> dict[str, float]:
    result: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            threshold = float(number)
        except ValueError:
            threshold = -1.0
        if not sep or not name.strip() or not 0.0 <= threshold <= 1.0:
            raise CommandError(
                f"--fail-under {value!r}: use METRIC=VALUE with VALUE from 0 to 1 "
                "(e.g. --fail-under helpfulness=0.7)"
            )
        result[name.strip()] = threshold
    return result


class _Bar:
    """A tqdm progress bar on stderr (quiet when not a terminal unless asked)."""

    def __init__(self, command: BaseCommand, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.command = command

    def __call__(self, completed: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="score", desc="judging", file=self.command.stderr)
        self.bar.n = completed
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Command(BaseCommand):
    help = (
        "Score agent runs with the LLM judge on the metric prompts in "
        "evaluations/metrics/prompts/ (default: the successful runs of the last 24 hours that "
        "lack a judge score), store the scores, send them to Langfuse and write a report to "
        "reports/evaluation_YYYYMMDD_HHMMSS.json. With --dataset FILE.jsonl, run the agent on "
        "each case first and gate on --fail-under."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-report", action="store_true", help="Do not write a report file.")
        parser.add_argument(
            "--since", default=None, help="How far back to look: 24h (default), 7d, 90m, 30s."
        )
        parser.add_argument(
            "--metric", action="append", default=[], dest="metrics",
            help="A metric to judge (repeatable; default: every metric file).",
        )  # fmt: skip
        parser.add_argument(
            "--run-id", action="append", default=[], dest="run_ids",
            help="Judge this run (repeatable; any age unless --since is given).",
        )  # fmt: skip
        parser.add_argument("--limit", type=int, default=None, help="At most this many runs.")
        parser.add_argument(
            "--concurrency", type=int, default=None,
            help="Judge calls at once (default EVALUATION_CONCURRENCY).",
        )  # fmt: skip
        parser.add_argument(
            "--dry-run", action="store_true",
            help="List what would be judged; store and send nothing.",
        )  # fmt: skip
        parser.add_argument(
            "--dataset", type=Path, default=None,
            help='JSONL cases ({"input", "expected"?}): run the agent on each, then judge.',
        )  # fmt: skip
        parser.add_argument(
            "--fail-under", action="append", default=[], metavar="METRIC=VALUE",
            help="With --dataset: exit non-zero when METRIC's average is below VALUE (repeatable).",
        )  # fmt: skip
        parser.add_argument(
            "--progress", action="store_true", help="Show the progress bar even when not a tty."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        try:
            run_ids = [uuid.UUID(value) for value in options["run_ids"]]
        except ValueError as exc:
            raise CommandError(f"--run-id: not a run id ({exc})") from None
        fail_under = _fail_under(options["fail_under"])
        if fail_under and not options["dataset"]:
            raise CommandError("--fail-under needs --dataset.")
        interactive = bool(getattr(self.stderr, "isatty", lambda: False)())
        bar = _Bar(self, enabled=(options["progress"] or interactive) and not options["dry_run"])
        judge = get_judge()
        label = f"{judge.model} (offline judge)" if judge.offline else judge.model
        self.stdout.write(f"Judge: {label}")
        try:
            if options["dataset"]:
                if options["dry_run"]:
                    raise CommandError("--dry-run does not apply to --dataset.")
                report = services.dataset_evaluate(
                    path=options["dataset"],
                    metric_names=options["metrics"] or None,
                    fail_under=fail_under,
                    concurrency=options["concurrency"],
                    write_report=not options["no_report"],
                    progress=bar,
                )
            else:
                since: timedelta | None = evaluator.parse_since(options["since"])
                if run_ids and options["since"] is None:
                    since = None  # named runs: any age
                report = evaluator.evaluation_run(
                    metric_names=options["metrics"] or None,
                    since=since,
                    run_ids=run_ids or None,
                    limit=options["limit"],
                    concurrency=options["concurrency"],
                    dry_run=options["dry_run"],
                    write_report=not options["no_report"] and not options["dry_run"],
                    progress=bar,
                )
        except EvaluationError as exc:
            raise CommandError(exc.detail) from exc
        except KeyboardInterrupt:
            raise CommandError("Interrupted: the scores stored so far are kept.") from None
        finally:
            bar.close()
            flush_langfuse()  # the dataset runs' traces and the scores, before the process exits
        self._summary(report)
        if evaluator.evaluation_all_failed(report):
            raise CommandError(
                f"All {report['judge_calls']} judge calls failed; first error: "
                f"{report['failures'][0]['error'] if report['failures'] else 'unknown'}"
            )
        dataset = report.get("dataset")
        if dataset is not None and not dataset["passed"]:
            reasons = [
                f"{name} {gate['avg_score']} < {gate['fail_under']}"
                for name, gate in dataset["gate"].items()
                if not gate["passed"]
            ]
            reasons += [f"the agent failed on line {f['line']}" for f in dataset["agent_failures"]]
            raise CommandError(f"Evaluation gate failed: {'; '.join(reasons)}")

    def _summary(self, report: dict[str, Any]) -> None:
        if report["dry_run"]:
            self.stdout.write(
                f"Dry run: {report['judge_calls_planned']} judge call(s) on "
                f"{report['total_traces']} run(s) would be made; nothing stored or sent."
            )
            for item in report["would_judge"][:50]:
                self.stdout.write(f"  {item['run_id']}: {', '.join(item['metrics'])}")
            return
        rows = [("metric", "ok", "failed", "avg score", "threshold")]
        for name, summary in report["metrics_summary"].items():
            average = summary["avg_score"]
            rows.append(
                (
                    name,
                    str(summary["success_count"]),
                    str(summary["failure_count"]),
                    "—" if average is None else f"{average:.3f}",
                    "—" if summary["threshold"] is None else f"{summary['threshold']:.2f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for number, row in enumerate(rows):
            self.stdout.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
            if number == 0:
                self.stdout.write("  ".join("-" * w for w in widths))
        tokens = report["tokens"]
        cost = "unknown" if report["cost"] is None else f"${report['cost']:.4f}"
        self.stdout.write(
            f"Runs: {report['total_traces']} ({report['successful_traces']} fully scored, "
            f"{report['failed_traces']} with failures); judge calls: {report['judge_calls']} "
            f"({report['failed_judge_calls']} failed) in {report['duration_seconds']:.1f}s; "
            f"tokens: {tokens['total']}; cost: {cost}"
        )
        for failure in report["failures"][:10]:
            self.stdout.write(
                self.style.WARNING(
                    f"  failed: run {failure['run_id']} {failure['metric']}: {failure['error']}"
                )
            )
        dataset = report.get("dataset")
        if dataset is not None:
            for name, gate in dataset["gate"].items():
                style = self.style.SUCCESS if gate["passed"] else self.style.ERROR
                self.stdout.write(
                    style(f"Gate {name}: {gate['avg_score']} (fail under {gate['fail_under']})")
                )
        if report.get("report_path"):
            self.stdout.write(self.style.SUCCESS(f"Report: {report['report_path']}"))
