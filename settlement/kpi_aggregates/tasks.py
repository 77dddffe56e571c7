"""The Celery door of the KPI pre-aggregates: a thin wrapper around the service."""
from celery import shared_task

from . import services


# A rebuild replaces the year's rows in one transaction: a redelivered task writes the same rows.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def rebuild_kpi_aggregates_task(year):
    services.rebuild_year(int(year))
