"""Thin Celery wrapper around the audit service."""
from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def audit_task(job_id):
    # Idempotent: a redelivered audit upserts the same findings again.
    services.run_audit_job(job_id)
