"""The Celery door of the benefit engine: a thin wrapper around the service."""
from celery import shared_task

from . import services


# The computation replaces the year's figures in one transaction: a redelivered task recomputes the
# same figures, and claim() runs a job at most once more, only when its process is gone.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def compute_expected_task(job_id):
    services.run_job(job_id)
