"""A run's stored inputs belong to one computation (SPEC §7): a resume gathers again unless this
computation's gather finished, and a task of an earlier computation writes nothing."""
from decimal import Decimal

import pytest

from settlement.engine import services
from settlement.engine.models import RunStatus, RunUnit, SettlementRun, UnitResult
from settlement.engine.services import resume_run, start_run
from settlement.models import Job, JobStatus, Payment
from tests.settlement.engine_data import policy
from tests.settlement.test_engine_runs import EXPECTED, build_two_alliances, figures

D = Decimal


def with_a_payment():
    """EXPECTED, plus 100.00 already paid to alliance A: paid 800.00 + 100.00, year-end 850.00 − 100.00."""
    build_two_alliances()
    policy()
    return Payment.objects.create(year=2025, month=6, scheme="capitation", unit_code="YGT-A", amount=D("100.00"))


WITH_PAYMENT = {
    **EXPECTED,
    "YGT-A": (D("1800.00"), D("800.00"), D("1000.00"), D("850.00"), D("150.00"), D("1650.00"), D("900.00"), D("750.00")),
}


@pytest.mark.django_db
def test_resume_after_the_gather_died_gathers_again_instead_of_reusing_the_previous_computation(
        django_capture_on_commit_callbacks):
    payment = with_a_payment()
    first = start_run("capitation", 2025, sync=True)
    assert figures(first) == WITH_PAYMENT
    payment.delete()
    # Started through the broker, and the gather's message never runs: the state a worker killed
    # during the gather leaves behind.
    with django_capture_on_commit_callbacks(execute=False) as sent:
        run = start_run("capitation", 2025)
    assert len(sent) == 1 and run.status == RunStatus.COMPUTING
    assert (run.computation, run.gathered_computation) == (first.computation + 1, None)
    # Nothing of the previous computation is left to be taken for this one's.
    assert not RunUnit.objects.filter(run=run).exists() and not UnitResult.objects.filter(run=run).exists()

    resumed = resume_run(run, sync=True)
    assert resumed.status == RunStatus.COMPUTED
    assert (resumed.units_total, resumed.units_done) == (2, 2)
    # Without the deleted payment: exactly the hand-computed figures of build_two_alliances.
    assert figures(resumed) == EXPECTED
    assert resumed.gathered_computation == resumed.computation == first.computation + 2
    assert set(RunUnit.objects.filter(run=run).values_list("computation", flat=True)) == {resumed.computation}
    assert Job.objects.get(pk=resumed.job_id).status == JobStatus.SUCCEEDED


@pytest.mark.django_db
def test_tasks_of_an_earlier_computation_write_nothing(django_capture_on_commit_callbacks):
    with_a_payment()
    first = start_run("capitation", 2025, sync=True)
    Payment.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=False):
        run = start_run("capitation", 2025)
    current = run.computation
    with django_capture_on_commit_callbacks(execute=False) as sent:
        services.gather_run(run.pk, computation=current)
    assert len(sent) == 2  # one unit task per alliance, not delivered yet
    assert RunUnit.objects.filter(run=run, computation=current, done=False).count() == 2

    # A unit task and a gather sent by the first computation arrive late (a redelivery).
    services.compute_unit(run.pk, "YGT-A", first.computation)
    services.gather_run(run.pk, computation=first.computation)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPUTING and run.units_done == 0
    assert not UnitResult.objects.filter(run=run).exists()
    assert RunUnit.objects.filter(run=run, computation=current, done=False).count() == 2
    services.fail_run(run.pk, "旧任务的失败", computation=first.computation)
    assert SettlementRun.objects.get(pk=run.pk).status == RunStatus.COMPUTING

    # This computation's own tasks finish it, from its own inputs (the payment is gone).
    services.compute_unit(run.pk, "YGT-A", current)
    services.compute_unit(run.pk, "YGT-B", current)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPUTED and (run.units_total, run.units_done) == (2, 2)
    assert figures(run) == EXPECTED


@pytest.mark.django_db
def test_a_run_never_finishes_on_units_its_gather_did_not_store(django_capture_on_commit_callbacks):
    with_a_payment()
    start_run("capitation", 2025, sync=True)
    with django_capture_on_commit_callbacks(execute=False):
        run = start_run("capitation", 2025)
    services.finish_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPUTING and run.units_total == 0
