"""Celery tasks (``celery -A config worker``; the schedule: ``celery -A config beat``).

The job's state lives in ``EvaluationJob``: a task only carries its id, and running a job twice
(a redelivery after a worker died) resumes it rather than repeating it.
"""

from __future__ import annotations

import uuid

from celery import shared_task

from evaluations import services


@shared_task(name="evaluations.run_job", ignore_result=True)
def run_job(job_id: str) -> None:
    services.job_execute(job_id=uuid.UUID(job_id))


@shared_task(name="evaluations.fail_stale_jobs", ignore_result=True)
def fail_stale_jobs() -> int:
    return services.job_fail_stale()


@shared_task(name="evaluations.evaluate_recent", ignore_result=True)
def evaluate_recent() -> None:
    """The scheduled evaluation (``EVALUATION_SCHEDULE_MINUTES``): the last day's runs, as a job."""
    services.job_create(requested_by=None)  # queued to a worker like any job
