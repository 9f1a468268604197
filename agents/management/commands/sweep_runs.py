from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agents.sweeper import run_sweep_stale


class Command(BaseCommand):
    help = (
        "End runs left 'running' by a process that died: every run running longer than "
        "AGENT_RUN_STALE_AFTER_SECONDS (or --older-than) becomes an error with code "
        "'abandoned', its open tool calls answered and its token reservation released."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            metavar="SECONDS",
            help="End runs started more than SECONDS ago "
            f"(default AGENT_RUN_STALE_AFTER_SECONDS, {settings.AGENT_RUN_STALE_AFTER_SECONDS:g}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List the runs it would end; change nothing."
        )
        parser.add_argument(
            "--limit", type=int, default=1000, help="At most this many runs (default 1000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = options["older_than"]
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be 0 or more seconds.")
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        swept = run_sweep_stale(
            older_than=timedelta(seconds=older_than) if older_than is not None else None,
            dry_run=options["dry_run"],
            limit=options["limit"],
        )
        verb = "would end" if options["dry_run"] else "ended"
        for run in swept:
            self.stdout.write(
                f"{verb} run {run.id} (thread {run.thread_id}, user {run.user_id}, "
                f"started {run.created_at})"
            )
        self.stdout.write(self.style.SUCCESS(f"{len(swept)} run(s) {verb} as abandoned."))
