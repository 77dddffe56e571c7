"""Thin Celery wrappers around the settlement services (one task per unit, SPEC §7).

Unit tasks carry only (run id, unit code): the unit's inputs are stored in `RunUnit` by the gather
step, so a redelivered or resumed task recomputes the very same figures.
"""
from celery import shared_task

from . import services


@shared_task(acks_late=True)
def gather_run_task(job_id, run_id):
    services.gather_run(run_id)


@shared_task(acks_late=True)
def compute_unit_task(run_id, unit_code):
    services.compute_unit(run_id, unit_code)


@shared_task(acks_late=True)
def prepayment_task(scheme, year, month, region_code=None):
    return services.run_prepayment(scheme, year, month, region_code)
