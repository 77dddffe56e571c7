"""The Celery door of the DRG analysis pre-aggregates: a thin wrapper around the service."""
from celery import shared_task

from . import aggregates


# A rebuild replaces the year's rows in one transaction: a redelivered task writes the same rows.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def rebuild_drg_analysis_task(year):
    aggregates.rebuild_year(int(year))
