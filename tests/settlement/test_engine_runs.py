"""Settlement runs (SPEC §7): policy resolution, lifecycle, idempotence, resume, read-only, prepayment."""
import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settlement.engine import services
from settlement.engine.models import RunStatus, RunUnit, SettlementRun, UnitResult
from settlement.engine.services import SettlementError, approve_run, mark_paid, resume_run, start_run
from settlement.models import Assessment, Job, JobStatus, Payment, PaymentSource
from tests import factories
from tests.settlement.engine_data import claim, d, policy, standards_2025

D = Decimal
YOUNG, OLD = datetime.date(1970, 5, 17), datetime.date(1950, 3, 3)


def build_two_alliances():
    """Alliance A: Q 1,800.00, A 800.00 → +850.00; alliance B: Q 2,400.00, A 2,900.00 → −425.00.

    A: p1 all year + p2 from 1 July (6 months) = 18 person-months × 100.00 = 1,800.00;
       A = 500.00 (p1 at A's hospital) + 300.00 (p2 at B's hospital, outside) = 800.00;
       S = 1,000.00 → unit 85% = 850.00, fund 150.00, E = 1,650.00, year-end +850.00.
    B: p3 (over 60) all year = 12 × 200.00 = 2,400.00; A = 2,900.00; S = −500.00 →
       unit −425.00, fund −75.00, E = 2,475.00, year-end −425.00.
    """
    county = factories.region()
    ia, ib = factories.institution(county=county), factories.institution(county=county)
    a, b = factories.alliance(lead=ia, code="YGT-A"), factories.alliance(lead=ib, code="YGT-B")
    standards_2025()
    p1, p2, p3 = factories.person(county, YOUNG), factories.person(county, YOUNG), factories.person(county, OLD)
    factories.contract(p1, ia, d("2024-01-01"), verified_on=d("2024-01-05"))
    factories.contract(p2, ia, d("2025-07-01"), verified_on=d("2025-07-02"))
    factories.contract(p3, ib, d("2024-01-01"), verified_on=d("2024-01-05"))
    claim(p1, ia, d("2025-02-01"), "500.00")
    claim(p2, ib, d("2025-09-09"), "300.00")
    claim(p3, ib, d("2025-11-11"), "2900.00")
    return county, a, b


def figures(run):
    return {
        r.unit_code: (r.quota, r.actual, r.surplus, r.unit_part, r.fund_part, r.entitled, r.paid, r.amount)
        for r in UnitResult.objects.filter(run=run)
    }


EXPECTED = {
    "YGT-A": (D("1800.00"), D("800.00"), D("1000.00"), D("850.00"), D("150.00"), D("1650.00"), D("800.00"), D("850.00")),
    "YGT-B": (D("2400.00"), D("2900.00"), D("-500.00"), D("-425.00"), D("-75.00"), D("2475.00"), D("2900.00"), D("-425.00")),
}


@pytest.mark.django_db
def test_sync_run_computes_every_unit_with_its_details():
    build_two_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED
    assert (run.units_total, run.units_done, run.percent) == (2, 2, 100)
    assert figures(run) == EXPECTED
    a = UnitResult.objects.get(run=run, unit_code="YGT-A")
    assert a.details["heads"] == 2 and a.details["person_months"] == 18
    assert (a.details["actual_inside"], a.details["actual_outside"]) == ("500.00", "300.00")
    assert a.details["retention_used"] == "0.85"
    assert run.parameters["retention"] == "0.85"  # the policy is snapshotted on the run
    assert Job.objects.get(pk=run.job_id).status == JobStatus.SUCCEEDED


@pytest.mark.django_db
def test_assessment_reduces_the_overspend_share():
    build_two_alliances()
    policy()
    Assessment.objects.create(year=2025, unit_code="YGT-B", score=D("95"), overspend_reduction=D("5"))
    run = start_run("capitation", 2025, sync=True)
    # B: O 500.00 × (85% − 5 points = 80%) = 400.00 refunded; fund bears 100.00
    b = UnitResult.objects.get(run=run, unit_code="YGT-B")
    assert (b.unit_part, b.fund_part, b.amount) == (D("-400.00"), D("-100.00"), D("-400.00"))


@pytest.mark.django_db
def test_policy_resolution_prefers_the_county_and_needs_one():
    county, *_ = build_two_alliances()
    with pytest.raises(SettlementError, match="未找到2025年度.*支付政策"):
        start_run("capitation", 2025, sync=True)
    assert not SettlementRun.objects.exists()  # nothing lands half-way
    policy(retention="0.50")  # city-wide
    policy(region=county, retention="0.70")
    run = start_run("capitation", 2025, region_code=county.code, sync=True)
    # the county's 70% applies: A keeps 0.70 × 1,000.00 = 700.00
    assert UnitResult.objects.get(run=run, unit_code="YGT-A").unit_part == D("700.00")
    city_run = start_run("capitation", 2025, sync=True)
    assert UnitResult.objects.get(run=city_run, unit_code="YGT-A").unit_part == D("500.00")


@pytest.mark.django_db
def test_draft_policy_bad_scheme_year_and_region_are_refused_in_chinese():
    build_two_alliances()
    policy(approved=False)
    with pytest.raises(SettlementError, match="尚未审批"):
        start_run("capitation", 2025, sync=True)
    with pytest.raises(SettlementError, match="未知的支付方案"):
        start_run("nonsense", 2025, sync=True)
    with pytest.raises(SettlementError, match="年度“20x5”无效"):
        start_run("capitation", "20x5", sync=True)
    with pytest.raises(SettlementError, match="区划代码“999999”不存在"):
        start_run("capitation", 2025, region_code="999999", sync=True)


@pytest.mark.django_db
def test_cannot_start_twice_at_once():
    build_two_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    SettlementRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPUTING)
    with pytest.raises(SettlementError, match="正在计算中"):
        start_run("capitation", 2025, sync=True)
    # and the database itself refuses a second computing run of the same settlement (NULLS NOT
    # DISTINCT: a city-wide run's region is NULL)
    with pytest.raises(IntegrityError), transaction.atomic():
        SettlementRun.objects.create(scheme="capitation", year=2025, version=2, status=RunStatus.COMPUTING)


@pytest.mark.django_db
def test_rerun_replaces_the_draft_result_never_duplicates():
    county, a, b = build_two_alliances()
    policy()
    first = start_run("capitation", 2025, sync=True)
    again = start_run("capitation", 2025, sync=True)
    assert again.pk == first.pk and again.version == 1
    assert UnitResult.objects.filter(run=first).count() == 2
    assert figures(again) == EXPECTED
    # a new claim of a head, then a re-run: the same row changes, still one per unit
    head = a.lead_hospital.contracts.first().person
    claim(head, a.lead_hospital, d("2025-09-03"), "100.00")  # the head from July
    third = start_run("capitation", 2025, sync=True)
    assert third.pk == first.pk and UnitResult.objects.filter(run=first).count() == 2
    # A: 800.00 + 100.00 = 900.00; S = 900.00 → unit 765.00
    assert UnitResult.objects.get(run=first, unit_code="YGT-A").unit_part == D("765.00")


@pytest.mark.django_db
def test_approved_run_is_read_only_and_recomputing_makes_version_two():
    county, a, b = build_two_alliances()
    policy()
    v1 = start_run("capitation", 2025, sync=True)
    approve_run(v1)
    with pytest.raises(SettlementError, match="已审核"):
        approve_run(v1)
    with pytest.raises(SettlementError, match="不能再修改"):
        resume_run(v1, sync=True)
    # a unit task arriving late for the approved run changes nothing
    services.compute_unit(v1.pk, "YGT-A")
    head = a.lead_hospital.contracts.first().person
    claim(head, a.lead_hospital, d("2025-01-01"), "0.01")
    v2 = start_run("capitation", 2025, sync=True)
    assert (v2.version, v2.pk != v1.pk) == (2, True)
    assert figures(SettlementRun.objects.get(pk=v1.pk)) == EXPECTED
    assert SettlementRun.objects.get(pk=v1.pk).status == RunStatus.APPROVED
    mark_paid(SettlementRun.objects.get(pk=v1.pk))
    assert SettlementRun.objects.get(pk=v1.pk).status == RunStatus.PAID
    with pytest.raises(SettlementError, match="只有“已审核”"):
        mark_paid(v2)


@pytest.mark.django_db
def test_resume_after_a_worker_died_mid_run_reaches_the_same_figures():
    county, a, b = build_two_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    # The state a killed worker leaves: one unit's transaction never committed.
    UnitResult.objects.filter(run=run, unit_code="YGT-B").delete()
    RunUnit.objects.filter(run=run, unit_code="YGT-B").update(done=False)
    SettlementRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPUTING, units_done=1)
    # Claims uploaded meanwhile do not leak into the interrupted run: its inputs are stored.
    head = b.lead_hospital.contracts.first().person
    claim(head, b.lead_hospital, d("2025-05-05"), "7.00")
    resumed = resume_run(run, sync=True)
    assert resumed.status == RunStatus.COMPUTED and resumed.units_done == 2
    assert figures(resumed) == EXPECTED


@pytest.mark.django_db
def test_a_redelivered_unit_task_counts_once():
    build_two_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    SettlementRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPUTING)
    services.compute_unit(run.pk, "YGT-A")  # already done: recomputed, replaced, not counted again
    run.refresh_from_db()
    assert run.units_done == 2
    assert UnitResult.objects.filter(run=run).count() == 2 and figures(run) == EXPECTED


@pytest.mark.django_db
def test_a_failing_unit_marks_the_run_failed_with_its_reason(monkeypatch):
    build_two_alliances()
    policy()
    from settlement.engine.base import get_rule

    rule = get_rule("capitation")
    original = rule.compute

    def broken(inputs, params, paid):
        if inputs.unit_code == "YGT-B":
            raise ValueError("S ≠ Q − A")
        return original(inputs, params, paid)

    monkeypatch.setattr(rule, "compute", broken)
    run = start_run("capitation", 2025, sync=True)
    assert run.status == RunStatus.FAILED
    assert "YGT-B" in run.failure_reason and "计算失败" in run.failure_reason
    assert Job.objects.get(pk=run.job_id).status == JobStatus.FAILED
    monkeypatch.setattr(rule, "compute", original)
    assert resume_run(run, sync=True).status == RunStatus.COMPUTED


@pytest.mark.django_db
def test_missing_standard_fails_the_run_with_a_clear_message():
    county = factories.region()
    inst = factories.institution(county=county)
    factories.alliance(lead=inst)
    factories.contract(factories.person(county, YOUNG), inst, d("2024-01-01"), verified_on=d("2024-01-02"))
    policy()
    run = start_run("capitation", 2025, sync=True)
    assert run.status == RunStatus.FAILED
    assert "缺少已审批的普通门诊人头标准" in run.failure_reason


@pytest.mark.django_db
def test_county_staff_settle_only_their_county(make_user):
    county, *_ = build_two_alliances()
    policy()
    other = factories.region("330503", "南浔区")
    user = make_user("county", county.code)
    assert start_run("capitation", 2025, region_code=county.code, user=user, sync=True).status == RunStatus.COMPUTED
    with pytest.raises(SettlementError, match="只能发起结算本县区"):
        start_run("capitation", 2025, region_code=other.code, user=user, sync=True)
    with pytest.raises(SettlementError, match="没有权限审核结算"):
        approve_run(SettlementRun.objects.get(region=county), user=user)


@pytest.mark.django_db
def test_monthly_prepayment_is_idempotent_and_respects_imported_rows(monkeypatch):
    build_two_alliances()
    policy()
    from settlement.engine.base import get_rule

    rule = get_rule("capitation")
    assert services.run_prepayment("capitation", 2025, 3)["created"] == 0  # capitation prepays nothing
    monkeypatch.setattr(rule, "prepayment", lambda ctx, params, month: {"YGT-A": D("100.005"), "YGT-B": D("50")})
    Payment.objects.create(year=2025, month=3, scheme="capitation", unit_code="YGT-B", amount=D("49.00"))
    first = services.run_prepayment("capitation", 2025, 3)
    assert (first["created"], first["skipped"]) == (1, ["YGT-B"])
    again = services.run_prepayment("capitation", 2025, 3)
    assert (again["created"], again["unchanged"]) == (0, 1)
    a = Payment.objects.get(year=2025, month=3, unit_code="YGT-A")
    assert (a.amount, a.source) == (D("100.01"), PaymentSource.PREPAYMENT)  # 100.005 → 100.01 half-up
    assert Payment.objects.get(year=2025, month=3, unit_code="YGT-B").amount == D("49.00")
    with pytest.raises(SettlementError, match="月份“13”无效"):
        services.run_prepayment("capitation", 2025, 13)
    # the payments count as 已拨付 in the next run: A's year-end is 850.00 − 100.01 = 749.99
    run = start_run("capitation", 2025, sync=True)
    assert UnitResult.objects.get(run=run, unit_code="YGT-A").amount == D("749.99")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    months=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4),
    amounts=st.lists(st.decimals(min_value=D("0"), max_value=D("5000"), places=2), min_size=1, max_size=5),
)
@pytest.mark.django_db
def test_rerunning_changes_nothing_and_identities_hold(months, amounts):
    with transaction.atomic():
        county = factories.region()
        inst = factories.institution(county=county)
        alliance = factories.alliance(lead=inst)
        standards_2025()
        policy()
        people = []
        for month in months:
            p = factories.person(county, YOUNG)
            factories.contract(p, inst, datetime.date(2025, month, 1), verified_on=datetime.date(2025, month, 1))
            people.append(p)
        for index, amount in enumerate(amounts):
            claim(people[index % len(people)], inst, datetime.date(2025, 12, 1 + index), str(amount))
        first = start_run("capitation", 2025, sync=True)
        before = figures(first)
        second = start_run("capitation", 2025, sync=True)
        assert figures(second) == before and second.pk == first.pk
        (q, a, s, unit, fund, e, paid, amount), = before.values()
        # Q = Σ (13 − start month) × 100.00; A = Σ claims (all in December, all counted)
        assert q == sum(D(13 - m) * 100 for m in months)
        assert a == sum(amounts)
        assert s == q - a and unit + fund == s and e - a == unit and amount == e - paid
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_unit_inputs_with_quotes_and_backslashes_survive_a_bulk_insert():
    run = SettlementRun.objects.create(scheme="capitation", year=2025, version=1)
    awkward = {"名称": 'A "quoted" \\ back\\slash\'s 医共体', "list": ['{"x": 1}', "\\n", None]}
    RunUnit.objects.bulk_create([
        RunUnit(run=run, unit_code="U1", inputs=awkward, paid=D("0")),
        RunUnit(run=run, unit_code="U2", inputs={"n": 2}, paid=D("1.50")),
    ])
    stored = {u.unit_code: u.inputs for u in RunUnit.objects.filter(run=run)}
    assert stored == {"U1": awkward, "U2": {"n": 2}}
