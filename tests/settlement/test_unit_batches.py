"""Units computed and persisted in batches: same figures, constant queries per batch, all-or-nothing."""
import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from settlement.engine import services
from settlement.engine.base import get_rule
from settlement.engine.models import RunStatus, RunUnit, SettlementRun, UnitResult
from settlement.engine.services import start_run, unit_batches
from tests import factories
from tests.settlement.engine_data import claim, d, policy, standards_2025

D = Decimal
UNITS = 20


def build_alliances():
    """Alliance i (1…20): one resident under 60 contracted all 2025 and one claim of 100 × i.

    Q = 12 person-months × 100.00 = 1,200.00; A = 100 × i; S = 1,200 − 100 i; the unit keeps 85 % of
    S either way (surplus or overspend), so 年终清算金额 = 0.85 × (1,200 − 100 i) = 1,020 − 85 i.
    """
    county = factories.region()
    standards_2025()
    for i in range(1, UNITS + 1):
        hospital = factories.institution(county=county)
        factories.alliance(lead=hospital, code=f"YGT-{i:02d}")
        person = factories.person(county, datetime.date(1970, 5, 17))
        factories.contract(person, hospital, d("2024-01-01"), verified_on=d("2024-01-05"))
        claim(person, hospital, d("2025-03-03"), f"{100 * i}.00")


@pytest.mark.parametrize("units, sizes", [
    (0, []), (1, [1]), (7, [1] * 7), (8, [1] * 8), (9, [2] * 4 + [1]), (20, [3] * 6 + [2]),
    (400, [50] * 8), (910, [50] * 18 + [10]),
])
def test_batches_spread_small_runs_and_cap_large_ones(units, sizes):
    codes = [f"U{i}" for i in range(units)]
    batches = unit_batches(codes)
    assert [len(batch) for batch in batches] == sizes
    assert [code for batch in batches for code in batch] == codes


@pytest.mark.django_db
def test_a_run_in_batches_gives_every_unit_its_hand_worked_figure():
    build_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED and (run.units_total, run.units_done) == (UNITS, UNITS)
    amounts = dict(UnitResult.objects.filter(run=run).values_list("unit_code", "amount"))
    assert amounts == {f"YGT-{i:02d}": D(1020 - 85 * i).quantize(D("0.01")) for i in range(1, UNITS + 1)}
    # Every result written in bulk has its history row, as one saved alone would.
    assert UnitResult.history.filter(run_id=run.pk, history_type="+").count() == UNITS


def _reopen(run):
    UnitResult.objects.filter(run=run).delete()
    RunUnit.objects.filter(run=run).update(done=False)
    SettlementRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPUTING, units_done=0)


@pytest.mark.django_db
def test_a_batch_costs_the_same_queries_whatever_its_size():
    build_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    _reopen(run)
    codes = sorted(RunUnit.objects.filter(run=run).values_list("unit_code", flat=True))
    with CaptureQueriesContext(connection) as two:
        services.compute_units(run.pk, codes[:2], run.computation)
    with CaptureQueriesContext(connection) as ten:
        services.compute_units(run.pk, codes[2:12], run.computation)
    assert len(two.captured_queries) == len(ten.captured_queries)
    run.refresh_from_db()
    assert run.units_done == 12 and run.status == RunStatus.COMPUTING


@pytest.mark.django_db
def test_a_redelivered_batch_replaces_its_results_and_counts_once():
    build_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    before = dict(UnitResult.objects.filter(run=run).values_list("unit_code", "amount"))
    SettlementRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPUTING)
    services.compute_units(run.pk, ["YGT-01", "YGT-02", "YGT-03"], run.computation)
    run.refresh_from_db()
    assert run.units_done == UNITS
    assert dict(UnitResult.objects.filter(run=run).values_list("unit_code", "amount")) == before


@pytest.mark.django_db
def test_one_failing_unit_fails_the_run_and_writes_nothing_of_its_batch(monkeypatch):
    build_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    _reopen(run)
    rule = get_rule("capitation")
    real = rule.compute

    def compute(inputs, params, paid):
        outcome = real(inputs, params, paid)
        if outcome.unit_code == "YGT-02":
            raise ValueError("输入有误")
        return outcome

    monkeypatch.setattr(rule, "compute", compute)
    services.compute_units(run.pk, ["YGT-01", "YGT-02", "YGT-03"], run.computation)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "YGT-02" in run.failure_reason and "输入有误" in run.failure_reason
    assert not UnitResult.objects.filter(run=run).exists() and run.units_done == 0


@pytest.mark.django_db
def test_a_rerun_replaces_every_result_with_a_history_row_for_each_deletion_and_insertion():
    build_alliances()
    policy()
    first = start_run("capitation", 2025, sync=True)
    old_ids = set(UnitResult.objects.filter(run=first).values_list("pk", flat=True))
    again = start_run("capitation", 2025, sync=True)
    assert again.pk == first.pk and again.status == RunStatus.COMPUTED
    history = UnitResult.history.filter(run_id=again.pk)
    # The 20 results of the first computation deleted, each with its "-" row naming its own id and figures…
    deleted = history.filter(history_type="-")
    assert set(deleted.values_list("id", flat=True)) == old_ids
    assert dict(deleted.values_list("unit_code", "amount")) == {
        f"YGT-{i:02d}": D(1020 - 85 * i).quantize(D("0.01")) for i in range(1, UNITS + 1)}
    # …and 20 new ones inserted, twice over: 40 "+" rows, no "~".
    assert history.filter(history_type="+").count() == 2 * UNITS and not history.filter(history_type="~").exists()
    assert set(history.values_list("history_user_id", flat=True)) == {None}
    assert UnitResult.objects.filter(run=again).count() == UNITS


@pytest.mark.django_db
def test_a_redelivered_batch_writes_a_change_row_per_replaced_result():
    build_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    SettlementRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPUTING)
    services.compute_units(run.pk, ["YGT-01", "YGT-02"], run.computation)
    changed = UnitResult.history.filter(run_id=run.pk, history_type="~")
    # 1,020 − 85 × 1 and 1,020 − 85 × 2, as before the redelivery.
    assert sorted(changed.values_list("unit_code", "amount")) == [("YGT-01", D("935.00")), ("YGT-02", D("850.00"))]
    assert UnitResult.objects.filter(run=run).count() == UNITS
