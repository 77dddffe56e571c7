"""Recovery (违规扣款, SPEC §9): confirmed findings deducted in the year-end settlement of the unit that paid
the item, with figures worked by hand."""
import csv
from decimal import Decimal

import pytest
from django.urls import reverse

from settlement.audit import recovery
from settlement.audit.models import Finding, FindingStatus, RecoveryItem
from settlement.audit.services import decide, run_audit
from settlement.engine.export import export_bytes
from settlement.engine.models import PaymentPolicy, RunStatus, UnitResult
from settlement.engine.services import approve_run, start_run
from settlement.engine.simulation import start_simulation
from settlement.models import ApprovalStatus
from tests import factories
from tests.settlement.engine_data import claim, d, policy
from tests.settlement.test_bed_day_payment import hospital  # noqa: F401  (fixture)
from tests.settlement.test_engine_runs import YOUNG, build_two_alliances
from tests.settlement.inpatient_builders import payment

pytestmark = pytest.mark.django_db
D = Decimal


def figures(result):
    return (result.quota, result.actual, result.surplus, result.unit_part, result.fund_part, result.entitled,
            result.paid, result.recovery, result.amount)


@pytest.fixture
def alliances(make_user):
    """build_two_alliances plus p1's 500.00 claim at A's hospital uploaded twice (DUP01 on the second).

    A: Q 1,800.00; A = 500.00 + 500.00 (the duplicate) + 300.00 = 1,300.00; S = 500.00 → 85% = 425.00,
    fund 75.00, E = 1,725.00, paid = A = 1,300.00 (claims paid as they occur), year-end +425.00.
    Confirmed, the duplicate's 涉及金额 (its 统筹支付 500.00) is deducted: year-end 425.00 − 500.00 = −75.00.
    """
    county, a, b = build_two_alliances()
    p1 = a.lead_hospital.contracts.get(start=d("2024-01-01")).person
    claim(p1, a.lead_hospital, d("2025-02-01"), "500.00")
    policy()
    run_audit(2025, ["DUP01"])
    (duplicate,) = Finding.objects.filter(rule="DUP01")
    assert duplicate.amount == D("500.00") and duplicate.institution_id == a.lead_hospital_id
    return {"county": county, "a": a, "b": b, "finding": duplicate, "bureau": make_user("county", county.code),
            "city": make_user("city")}


def confirm(finding, user):
    decide([finding.pk], user, True, "核实为重复结算")


WITHOUT = (D("1800.00"), D("1300.00"), D("500.00"), D("425.00"), D("75.00"), D("1725.00"), D("1300.00"),
           D("0.00"), D("425.00"))
WITH = WITHOUT[:7] + (D("500.00"), D("-75.00"))
B = (D("2400.00"), D("2900.00"), D("-500.00"), D("-425.00"), D("-75.00"), D("2475.00"), D("2900.00"),
     D("0.00"), D("-425.00"))


def test_a_confirmed_finding_is_deducted_from_the_unit_whose_a_paid_the_claim(alliances):
    confirm(alliances["finding"], alliances["bureau"])
    run = start_run("capitation", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    assert figures(run.results.get(unit_code="YGT-A")) == WITH
    assert figures(run.results.get(unit_code="YGT-B")) == B  # the claim is not in B's A
    (item,) = RecoveryItem.objects.all()
    assert (item.finding_id, item.amount, item.unit.unit_code) == (alliances["finding"].pk, D("500.00"), "YGT-A")
    # export_settlement: 违规扣款 beside 已拨付, 年终清算金额 = E − 已拨付 − 违规扣款
    rows = list(csv.reader(export_bytes(run, "csv").decode("utf-8-sig").splitlines()))
    assert rows[0][-3:] == ["已拨付", "违规扣款", "年终清算金额"]
    assert rows[1][0] == "YGT-A" and rows[1][-3:] == ["1300.00", "500.00", "-75.00"]
    assert rows[2][0] == "YGT-B" and rows[2][-3:] == ["2900.00", "0.00", "-425.00"]


def test_open_appealed_and_dismissed_findings_deduct_nothing(alliances):
    decide([alliances["finding"].pk], alliances["bureau"], False, "系补录，已冲销")
    run = start_run("capitation", 2025, sync=True)
    assert figures(run.results.get(unit_code="YGT-A")) == WITHOUT
    assert not RecoveryItem.objects.exists()


def test_an_approved_run_is_untouched_by_a_later_confirmation_which_waits_for_the_next_version(alliances, client):
    run = start_run("capitation", 2025, sync=True)
    approve_run(run, alliances["city"])
    confirm(alliances["finding"], alliances["bureau"])
    result = UnitResult.objects.get(run=run, unit_code="YGT-A")
    assert figures(result) == WITHOUT
    assert recovery.pending(result) == [recovery.Deduction(alliances["finding"].pk, D("500.00"))]
    assert not recovery.deducted_items(result).exists()
    client.force_login(alliances["city"])
    for url in (reverse("admin:settlement_unitresult_change", args=[result.pk]),
                reverse("admin:settlement_unitresult_statement", args=[result.pk])):
        page = client.get(url).content.decode()
        assert "待下一版本扣回" in page and "应扣金额合计500.00元" in page, url
        assert "违规扣款明细</th>" not in page  # nothing deducted in this version
    # The next version deducts it, and nothing is pending there any more.
    second = start_run("capitation", 2025, sync=True)
    assert second.version == 2
    fresh = second.results.get(unit_code="YGT-A")
    assert figures(fresh) == WITH
    assert not recovery.pending(fresh)
    assert figures(UnitResult.objects.get(pk=result.pk)) == WITHOUT  # version 1 as approved


def test_the_statement_lists_exactly_the_deducted_findings_and_adds_up(alliances, client):
    other = factories.person(alliances["county"], YOUNG)  # no contract: nobody's head
    claim(other, alliances["a"].lead_hospital, d("2025-03-03"), "80.00")
    claim(other, alliances["a"].lead_hospital, d("2025-03-03"), "80.00")
    run_audit(2025, ["DUP01"])
    stray = Finding.objects.get(rule="DUP01", person=other)
    confirm(alliances["finding"], alliances["bureau"])
    confirm(stray, alliances["bureau"])
    run = start_run("capitation", 2025, sync=True)
    result = run.results.get(unit_code="YGT-A")
    assert [i.finding for i in recovery.deducted_items(result)] == [alliances["finding"]]
    # No capitation unit's A holds the stranger's claim: a stand-alone recovery of the institution.
    assert list(recovery.standalone(2025)) == [stray]
    client.force_login(alliances["city"])
    changelist = reverse("admin:settlement_finding_changelist")
    for value, expected in (("standalone", [stray.pk]), ("deducted", [alliances["finding"].pk])):
        listing = client.get(f"{changelist}?recovery={value}")
        assert [f.pk for f in listing.context_data["cl"].result_list] == expected, value
    page = client.get(reverse("admin:settlement_unitresult_statement", args=[result.pk])).content.decode()
    serial = alliances["finding"].claim.serial
    assert "违规扣款明细" in page and serial in page and stray.claim.serial not in page
    assert "合计（各行之和）" in page and "−75.00" in page


def test_only_who_sees_the_unit_sees_its_deductions(alliances, client, make_user, other_county):
    confirm(alliances["finding"], alliances["bureau"])
    run = start_run("capitation", 2025, sync=True)
    result = run.results.get(unit_code="YGT-A")
    url = reverse("admin:settlement_unitresult_statement", args=[result.pk])
    client.force_login(make_user("hospital", alliances["a"].lead_hospital.code))
    assert alliances["finding"].claim.serial in client.get(url).content.decode()
    for user in (make_user("hospital", alliances["b"].lead_hospital.code), make_user("county", other_county.code)):
        client.force_login(user)
        assert client.get(url).status_code == 404


def test_a_simulation_deducts_what_its_base_run_deducted(alliances):
    confirm(alliances["finding"], alliances["bureau"])
    run = start_run("capitation", 2025, sync=True)
    simulation = start_simulation(run, {"retention": "0.80"}, sync=True)
    unit = simulation.units.get(unit_code="YGT-A")
    # retention 80%: unit part 400.00, E = 1,700.00; year-end 1,700.00 − 1,300.00 − 500.00 = −100.00
    assert (unit.base_amount, unit.entitled, unit.amount) == (D("-75.00"), D("1700.00"), D("-100.00"))


def test_a_case_finding_is_deducted_in_the_scheme_the_case_was_assigned_to(hospital, make_user):  # noqa: F811
    """The bed-day hospital of test_bed_day_payment: E 26,900.00, paid 20,000.00, year-end 6,900.00.

    Its second 精神 stay was admitted the day after the first one's discharge (same diagnosis): SPL01 on
    it, 涉及金额 = its 统筹支付 18,000.00. Confirmed: year-end 6,900.00 − 18,000.00 = −11,100.00. The first
    stay's own SPL01 (after a 2024 stay) stays open and deducts nothing."""
    PaymentPolicy.objects.create(scheme="bed_day", year=2025, name="按床日付费", status=ApprovalStatus.APPROVED)
    payment(hospital.code, "20000.00", scheme="bed_day")
    run_audit(2025, ["SPL01"])
    findings = {f.case.admission_date.isoformat(): f for f in Finding.objects.filter(rule="SPL01")}
    assert sorted(findings) == ["2025-01-01", "2025-02-01"]
    later = findings["2025-02-01"]
    assert later.amount == D("18000.00")
    decide([later.pk], make_user("city"), True, "分解住院属实")
    run = start_run("bed_day", 2025, sync=True)
    result = run.results.get(unit_code=hospital.code)
    assert (result.entitled, result.paid, result.recovery, result.amount) == (
        D("26900.00"), D("20000.00"), D("18000.00"), D("-11100.00"))
    assert [i.finding for i in recovery.deducted_items(result)] == [later]
    assert findings["2025-01-01"].status == FindingStatus.OPEN
    # The DRG run of the same year has no bed-day case: it deducts nothing of it.
    assert recovery.deductions(*_rule_ctx("drg"), [hospital.code]) == {}


def _rule_ctx(scheme):
    from settlement.engine.base import RunContext, get_rule

    rule = get_rule(scheme)
    return rule, RunContext(scheme, 2025), rule.params_class()


def test_a_draft_run_takes_a_later_confirmation_when_recomputed(alliances, client):
    run = start_run("capitation", 2025, sync=True)
    confirm(alliances["finding"], alliances["bureau"])
    result = run.results.get(unit_code="YGT-A")
    client.force_login(alliances["city"])
    page = client.get(reverse("admin:settlement_unitresult_change", args=[result.pk])).content.decode()
    assert "待重新计算后扣回" in page
    again = start_run("capitation", 2025, sync=True)
    assert again.pk == run.pk and again.version == 1  # the same draft version, recomputed
    assert figures(again.results.get(unit_code="YGT-A")) == WITH
