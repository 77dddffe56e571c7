"""Thin Celery wrappers around the settlement services (one task per batch of units, SPEC §7).

Unit tasks carry (run id, unit codes, computation): the unit's inputs are stored in `RunUnit` by the
gather step, so a redelivered or resumed task recomputes the very same figures, and one sent by an
earlier computation of the run finds its number outdated and writes nothing.

All three are idempotent (a gather replaces its computation's inputs, a unit upserts its result and
counts once, a prepayment upserts the month's rows), so each is acknowledged only once done and
requeued when its pool process dies: a worker killed mid-task loses no work.
"""
from celery import shared_task

from settlement import jobs

from . import services, simulation

IDEMPOTENT = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(**IDEMPOTENT)
def gather_run_task(job_id, run_id, computation=None):
    services.gather_run(run_id, computation=computation)


@shared_task(**IDEMPOTENT)
def compute_units_task(run_id, unit_codes, computation=None):
    services.compute_units(run_id, unit_codes, computation=computation)


@shared_task(**IDEMPOTENT)
def compute_unit_task(run_id, unit_code, computation=None):
    """One unit, as messages queued before units travelled in batches still ask."""
    services.compute_unit(run_id, unit_code, computation=computation)


@shared_task(**IDEMPOTENT)
def prepayment_task(scheme, year, month, region_code=None):
    return services.run_prepayment(scheme, year, month, region_code)


@shared_task(**IDEMPOTENT)
def simulation_task(job_id, simulation_id):
    # A simulation stores its units in one transaction at the end: run again, it starts afresh.
    if not jobs.claim(job_id):
        return  # cancelled before it started, already run, or still running elsewhere
    simulation.run_simulation(simulation_id)
