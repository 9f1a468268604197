from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import user_get_by_email
from agents.retention import STRATEGIES, Removed, ThreadPruned, thread_prune_inactive
from core.durations import parse_duration
from core.errors import InvalidDuration

_VERBS = {
    ("deleted", False): "deleted",
    ("deleted", True): "would delete",
    ("pruned", False): "pruned",
    ("pruned", True): "would prune",
    ("skipped", False): "skipped",
    ("skipped", True): "would skip",
    ("unchanged", False): "kept",
    ("unchanged", True): "would keep",
}


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _removed(removed: Removed) -> str:
    return (
        f"{removed.checkpoints} checkpoint(s), {removed.writes} write(s), "
        f"{removed.blobs} blob(s), {removed.bytes:,} bytes"
    )


class Command(BaseCommand):
    help = (
        "Prune conversations with no activity for a while: --strategy delete removes each "
        "thread as DELETE /api/v1/agent/threads/{id} does (its runs and memory; the token "
        "usage stays); keep_latest keeps each thread's latest checkpoint only, so its "
        "conversation continues while its history snapshots go. Threads with a run in progress "
        "are skipped. Prints what it removed: threads, checkpoints, bytes."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        days = settings.AGENT_THREAD_RETENTION_DAYS
        parser.add_argument(
            "--older-than",
            default=None,
            metavar="DURATION",
            help="Threads with no activity for this long: 30d, 12h, 90m, 2w (as evaluate "
            "--since takes them); 0d: every thread with no activity since now. Default "
            + (f"AGENT_THREAD_RETENTION_DAYS ({days}d)." if days else "none: required."),
        )
        parser.add_argument(
            "--strategy",
            choices=STRATEGIES,
            default=settings.AGENT_THREAD_RETENTION_STRATEGY,
            help="delete (the thread, its runs, its memory) or keep_latest (the latest "
            "checkpoint of each thread only). Default AGENT_THREAD_RETENTION_STRATEGY "
            f"({settings.AGENT_THREAD_RETENTION_STRATEGY}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would go; change nothing."
        )
        parser.add_argument(
            "--user", metavar="EMAIL", default=None, help="Only this user's threads."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = self._older_than(options["older_than"])
        user = None
        if options["user"] is not None:
            user = user_get_by_email(email=options["user"])
            if user is None:
                raise CommandError(f"--user: no user has the email {options['user']!r}.")
        dry_run: bool = options["dry_run"]
        verbosity: int = options["verbosity"]

        def report(thread: ThreadPruned) -> None:
            if thread.outcome == "unchanged" and verbosity < 2:
                return
            line = (
                f"{_VERBS[thread.outcome, dry_run]} thread {thread.thread_id} "
                f"({thread.owner_email}, last activity {_when(thread.updated_at)})"
            )
            if thread.outcome == "skipped":
                self.stdout.write(self.style.WARNING(f"{line}: {thread.reason}"))
            elif thread.outcome == "unchanged":
                self.stdout.write(f"{line}: only its latest checkpoint")
            elif verbosity >= 1:
                self.stdout.write(f"{line}: {_removed(thread.removed)}")

        summary = thread_prune_inactive(
            older_than=older_than,
            strategy=options["strategy"],
            dry_run=dry_run,
            user=user,
            report=report,
        )
        verb = {"delete": "deleted", "keep_latest": "pruned to their latest checkpoint"}
        done = verb[summary.strategy]
        scope = f" of {user.email}" if user is not None else ""
        since = f"with no activity since {_when(summary.cutoff)}"
        if dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dry run, nothing changed: {summary.threads} thread(s){scope} {since} "
                    f"would be {done}, removing {_removed(summary.removed)}."
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"{summary.threads} thread(s){scope} {since} {done}: removed "
                    f"{_removed(summary.removed)}."
                )
            )
        if summary.unchanged:
            self.stdout.write(
                f"{summary.unchanged} thread(s) had nothing but their latest checkpoint."
            )
        if summary.skipped:
            self.stdout.write(
                self.style.WARNING(
                    f"{summary.skipped} thread(s) skipped (listed above): "
                    "a run in progress, or new activity."
                )
            )

    @staticmethod
    def _older_than(value: str | None) -> timedelta:
        if value is None:
            days = settings.AGENT_THREAD_RETENTION_DAYS
            if not days:
                raise CommandError(
                    "--older-than is required (AGENT_THREAD_RETENTION_DAYS is 0: keep every "
                    "thread). E.g. --older-than 30d."
                )
            return timedelta(days=days)
        try:
            return parse_duration(value, allow_zero=True)
        except InvalidDuration as exc:
            raise CommandError(f"--older-than: {exc.detail}") from exc
