"""alliance_budget scheme (SPEC §6.4): deposit return by score, A, prepayments, and the budget
composition it settles (reserve cap, out-of-city estimate, member allocation)."""
import dataclasses
import datetime
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.core.exceptions import PermissionDenied, ValidationError

from alliances import services_budget as svc
from alliances.models import AllianceBudgetPlan, BudgetStatus, InstitutionLevel, MemberAllocation
from contracts.models import InsuranceType
from settlement.engine.base import RunContext, get_rule
from settlement.engine.schemes.alliance_budget import (
    AllianceBudgetInputs, AllianceBudgetParams, MissingAssessmentError, MissingDefaultAllianceError, settle,
)
from settlement.models import Assessment, Budget, OutpatientClaim, Scheme, VisitType
from tests import factories

D = Decimal
B = D("12000000.00")
PARAMS = AllianceBudgetParams()


# --- Pure formula ------------------------------------------------------------------------------


@pytest.mark.parametrize("score, withheld, entitled", [
    # deposit = 5% × 12,000,000.00 = 600,000.00
    ("60", "200000.00", "11800000.00"),  # f = 60/90 = 2/3 → withheld 600,000.00 × 1/3
    ("90", "0.00", "12000000.00"),  # f = 1
    ("100", "0.00", "12000000.00"),  # f = min(1, 100/90) = 1
    ("45", "300000.00", "11700000.00"),  # f = 1/2
    ("0", "600000.00", "11400000.00"),  # nothing returned
])
def test_deposit_returned_in_proportion_to_score(score, withheld, entitled):
    figures = settle(B, D("11000000.00"), D(score), PARAMS)
    assert figures.deposit == D("600000.00")
    assert figures.withheld == D(withheld)
    assert figures.entitled == D(entitled)


def inputs(actual="11000000.00", score="60", code="YGT1"):
    return AllianceBudgetInputs(
        unit_code=code, unit_name="测试医共体", county_code="330502",
        budget_by_type={"职工": D("5000000.00"), "居民": D("7000000.00")}, actual=D(actual), score=D(score),
    )


def test_compute_outcome_at_score_60():
    rule = get_rule("alliance_budget")
    prepaid = D("950000.00") * 12  # 12 × (12,000,000.00 / 12 × 95%) = 11,400,000.00
    outcome = rule.compute(inputs(), PARAMS, prepaid)
    assert (outcome.quota, outcome.actual, outcome.surplus) == (B, D("11000000.00"), D("1000000.00"))
    assert outcome.entitled == D("11800000.00")
    assert outcome.unit_part == D("800000.00")  # E − A
    assert outcome.fund_part == D("200000.00")  # the withheld part of the deposit
    assert outcome.amount == D("400000.00")  # 11,800,000.00 − 11,400,000.00
    assert outcome.details["质量保证金"] == "600000.00"


def test_overspend_is_not_covered():
    # A = 13,000,000.00 > B: 超支不补 → E = B; the alliance bears the 1,000,000.00 overspend.
    outcome = get_rule("alliance_budget").compute(inputs(actual="13000000.00", score="95"), PARAMS, D("0"))
    assert outcome.entitled == B
    assert outcome.unit_part == D("-1000000.00")
    assert outcome.fund_part == D("0.00")


def test_retention_and_cover_parameters_change_e():
    params = dataclasses.replace(PARAMS, surplus_retention=D("0.80"), overspend_covered=D("0.50"))
    # Surplus: E = A + 0.8 × (12,000,000.00 − 11,000,000.00) = 11,800,000.00
    assert settle(B, D("11000000.00"), D("90"), params).entitled == D("11800000.00")
    # Overspend: E = B + 0.5 × 1,000,000.00 = 12,500,000.00
    assert settle(B, D("13000000.00"), D("90"), params).entitled == D("12500000.00")


def test_compute_without_score_refuses():
    with pytest.raises(MissingAssessmentError):
        settle(B, D("0"), None, PARAMS)


# --- Gather and prepayment against the database -----------------------------------------------


@pytest.fixture
def setup(county, other_county):
    g1 = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    t3 = factories.institution(county=other_county, level=InstitutionLevel.TERTIARY)
    alliance = factories.alliance(members=[g1], county=county)
    for kind, amount in (("职工", "5000000.00"), ("居民", "7000000.00")):
        Budget.objects.create(year=2025, scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance.code,
                              insurance_type=kind, amount=D(amount))
    Budget.objects.create(year=2025, scheme=Scheme.CAPITATION, unit_code=alliance.code, amount=D("999"))
    resident = factories.person(county=county)
    employee = factories.person(county=county, insurance_type=InsuranceType.EMPLOYEE)
    outsider = factories.person(county=other_county)

    def claim(serial, person, inst, day, fund, visit_type=VisitType.GENERAL):
        OutpatientClaim.objects.create(
            institution=inst, serial=serial, person=person, visit_date=day, insurance_type=person.insurance_type,
            visit_type=visit_type, total_cost=D(fund) + 10, fund_paid=D(fund), personal_paid=D("10"),
        )

    claim("1", resident, g1, datetime.date(2025, 2, 1), "700.00")  # counted
    claim("2", resident, t3, datetime.date(2025, 12, 31), "300.25")  # counted: wherever treated
    claim("3", resident, g1, datetime.date(2025, 3, 1), "999.00", VisitType.CHRONIC)  # not 普通门诊
    claim("4", employee, g1, datetime.date(2025, 3, 1), "500.00")  # not resident insurance
    claim("5", outsider, g1, datetime.date(2025, 3, 1), "400.00")  # insured in another county
    claim("6", resident, g1, datetime.date(2024, 12, 31), "800.00")  # another year
    return {"alliance": alliance, "county": county, "other_county": other_county}


def test_gather_b_and_a(setup):
    alliance = setup["alliance"]
    Assessment.objects.create(year=2025, unit_code=alliance.code, score=D("60"))
    rule = get_rule("alliance_budget")
    gathered = rule.gather(RunContext("alliance_budget", 2025), PARAMS)
    unit = gathered[alliance.code]
    assert unit.budget == B  # 5,000,000.00 + 7,000,000.00; the capitation row is another scheme's
    assert unit.actual == D("1000.25")  # 700.00 + 300.25
    assert unit.score == D("60.00")
    outcome = rule.compute(unit, PARAMS, D("0"))
    assert outcome.entitled == D("11800000.00")
    assert outcome.unit_part == D("11800000.00") - D("1000.25")
    assert "尚未获批" in outcome.warnings[0]  # budget_status is still 未申请

    assert rule.gather(RunContext("alliance_budget", 2025, setup["other_county"].code), PARAMS) == {}
    assert alliance.code in rule.gather(RunContext("alliance_budget", 2025, "330500"), PARAMS)  # the city
    claims = rule.claims_for_unit(RunContext("alliance_budget", 2025), PARAMS, alliance.code)
    assert sorted(claims.values_list("serial", flat=True)) == ["1", "2"]


def test_two_alliances_of_one_county_split_a_by_coverage(setup, county, other_county):
    """SPEC §6.4 Coverage: each resident counts for one alliance (contract, else the default)."""
    from settlement.engine.models import PaymentPolicy, RunStatus, UnitResult
    from settlement.engine.params import defaults_of
    from settlement.engine.services import start_run
    from settlement.models import ApprovalStatus

    first = setup["alliance"]  # 吴兴区's default: covers every resident without a contract elsewhere
    first.is_default = True
    first.save()
    member = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    second = factories.alliance(county=county, members=[member])
    elsewhere = factories.alliance(county=other_county)
    contracted = factories.person(county=county)
    late = factories.person(county=county)
    # In force on 1 January at a member of the second alliance: covered by it.
    factories.contract(contracted, member, datetime.date(2024, 6, 1), verified_on=datetime.date(2024, 6, 2))
    # First held in March (verified): from then on the second alliance's, for the whole year.
    factories.contract(late, second.lead_hospital, datetime.date(2025, 3, 1), verified_on=datetime.date(2025, 3, 5))
    unverified = factories.person(county=county)
    factories.contract(unverified, member, datetime.date(2024, 1, 1))  # never verified: the default's
    g1 = first.memberships.exclude(institution=first.lead_hospital).get().institution
    for serial, who, fund in (("c1", contracted, "111.11"), ("c2", late, "22.22"), ("c3", unverified, "3.33")):
        OutpatientClaim.objects.create(
            institution=g1, serial=serial, person=who, visit_date=datetime.date(2025, 2, 1),
            insurance_type=who.insurance_type, visit_type=VisitType.GENERAL, total_cost=D(fund) + 10,
            fund_paid=D(fund), personal_paid=D("10"),
        )
    for obj in (second, elsewhere):
        Budget.objects.create(year=2025, scheme=Scheme.ALLIANCE_BUDGET, unit_code=obj.code, insurance_type="居民",
                              amount=D("1000000.00"))
    for obj in (first, second, elsewhere):
        Assessment.objects.create(year=2025, unit_code=obj.code, score=D("90"))
    PaymentPolicy.objects.create(
        scheme="alliance_budget", year=2025, name="开封", status=ApprovalStatus.APPROVED,
        parameters=defaults_of(get_rule("alliance_budget").params_class),
    )

    run = start_run("alliance_budget", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    results = {r.unit_code: r for r in UnitResult.objects.filter(run=run)}
    # Default alliance: 700.00 + 300.25 (setup's resident, no contract) + 3.33 (unverified) = 1,003.58
    assert results[first.code].actual == D("1003.58")
    # Second alliance: its contracted residents, 111.11 + 22.22 = 133.33, though treated at g1.
    assert results[second.code].actual == D("133.33")
    # The county's A: every resident's 普通门诊 claim of the year, 700.00 + 300.25 + 111.11 + 22.22 + 3.33.
    county_a = OutpatientClaim.objects.filter(
        person__county=county, person__insurance_type="居民", visit_type=VisitType.GENERAL,
        visit_date__year=2025,
    ).aggregate(total=Sum("fund_paid"))["total"]
    assert county_a == D("1136.91")
    assert results[first.code].actual + results[second.code].actual == county_a
    assert results[elsewhere.code].actual == D("400.00")  # the outsider's claim, insured in 南浔区
    assert not any("共用" in w for w in run.warnings)

    ctx, rule = RunContext("alliance_budget", 2025), get_rule("alliance_budget")
    first_claims = set(rule.claims_for_unit(ctx, PARAMS, first.code).values_list("pk", flat=True))
    second_claims = set(rule.claims_for_unit(ctx, PARAMS, second.code).values_list("pk", flat=True))
    assert not first_claims & second_claims  # no claim counts for both
    assert len(first_claims) + len(second_claims) == 5
    # The unit page says how many residents each alliance covers, and how.
    assert results[second.code].details["覆盖参保居民（签约）"] == "2"
    assert results[second.code].details["覆盖参保居民（默认归属）"] == "0"
    assert results[first.code].details["覆盖参保居民（签约）"] == "0"
    assert results[first.code].details["覆盖参保居民（默认归属）"] == "2"  # setup's resident, unverified


def test_a_county_with_two_alliances_and_no_default_stops_the_run(setup, county):
    factories.alliance(county=county)
    Assessment.objects.create(year=2025, unit_code=setup["alliance"].code, score=D("90"))
    with pytest.raises(MissingDefaultAllianceError, match="未指定县区默认医共体.*吴兴区"):
        get_rule("alliance_budget").gather(RunContext("alliance_budget", 2025), PARAMS)


def test_default_flag_is_validated_in_chinese(setup, county):
    first = setup["alliance"]
    second = factories.alliance(county=county)
    # Neither is the default: whichever is saved through a form is refused.
    with pytest.raises(ValidationError, match="必须将其中一个设为县区默认医共体"):
        second.full_clean()
    second.is_default = True
    second.full_clean()
    second.save()
    first.is_default = True
    with pytest.raises(ValidationError, match="该县区已有默认医共体"):
        first.full_clean()
    # The database keeps the rule for every door that skips the form.
    from django.db import IntegrityError, transaction
    with pytest.raises(IntegrityError), transaction.atomic():
        first.save()
    # Alone in its county an alliance needs no flag.
    factories.alliance(county=factories.region("330599", "测试县")).full_clean()

def test_missing_assessment_stops_the_run_naming_the_alliance(setup):
    alliance = setup["alliance"]
    with pytest.raises(MissingAssessmentError, match=f"{alliance.name}（{alliance.code}）"):
        get_rule("alliance_budget").gather(RunContext("alliance_budget", 2025), PARAMS)


def test_prepayment_from_the_month_after_approval(setup):
    alliance = setup["alliance"]
    rule = get_rule("alliance_budget")
    ctx = RunContext("alliance_budget", 2025)
    assert rule.prepayment(ctx, PARAMS, 5) == {}  # not approved
    alliance.budget_status = BudgetStatus.APPROVED
    alliance.budget_effective_from = datetime.date(2025, 5, 1)
    alliance.save()
    assert rule.prepayment(ctx, PARAMS, 4) == {}
    # 12,000,000.00 / 12 × 95% = 950,000.00
    assert rule.prepayment(ctx, PARAMS, 5) == {alliance.code: D("950000.00")}
    alliance.budget_status = BudgetStatus.WITHDRAWN
    alliance.save()
    assert rule.prepayment(ctx, PARAMS, 8) == {}


# --- Budget composition, reserve cap, allocation --------------------------------------------------


@pytest.fixture
def plan_world(county, other_county, make_user):
    lead = factories.institution(county=county)
    g1 = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    g2 = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    stranger = factories.institution(county=county)
    alliance = factories.alliance(lead=lead, members=[g1, g2])
    return {
        "alliance": alliance, "lead": lead, "g1": g1, "g2": g2, "stranger": stranger,
        "county_user": make_user("county", county.code), "lead_user": make_user("hospital", lead.code),
    }


def test_plan_writes_budget_row_and_caps_reserve(plan_world, make_user, other_county):
    alliance, user = plan_world["alliance"], plan_world["county_user"]
    plan = svc.save_budget_plan(
        user, alliance, 2025, "居民", D("13000000.00"), D("1000000.00"),
        out_of_city_history=[D("300000.00"), D("330000.00"), D("360000.00")],
        city_items=[("大病保险", D("800000.00")), ("谈判药品", D("200000.00"), "单独支付")],
    )
    # B = 13,000,000.00 − 1,000,000.00 reserve; out-of-city = (300,000 + 330,000 + 360,000) / 3 = 330,000.00
    assert Budget.objects.get(scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance.code, insurance_type="居民").amount == B
    assert plan.out_of_city_estimate == D("330000.00")
    assert plan.allocatable == D("11670000.00")
    assert plan.city_items.count() == 2

    # 10% of 13,000,000.00 = 1,300,000.00: one fen more is refused and nothing changes.
    with pytest.raises(ValidationError, match="风险储备金：1300000.01元超过年度预算总额的10%（上限1300000.00元）"):
        svc.save_budget_plan(user, alliance, 2025, "居民", D("13000000.00"), D("1300000.01"))
    assert AllianceBudgetPlan.objects.get().risk_reserve == D("1000000.00")
    assert Budget.objects.get(scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance.code).amount == B
    # Exactly 10% is allowed.
    svc.save_budget_plan(user, alliance, 2025, "居民", D("13000000.00"), D("1300000.00"))
    assert Budget.objects.get(scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance.code).amount == D("11700000.00")

    with pytest.raises(PermissionDenied):
        svc.save_budget_plan(make_user("county", other_county.code), alliance, 2025, "居民", D("1"), D("0"))
    with pytest.raises(PermissionDenied):
        svc.save_budget_plan(plan_world["lead_user"], alliance, 2025, "居民", D("1"), D("0"))
    with pytest.raises(ValidationError, match="险种"):
        svc.save_budget_plan(user, alliance, 2025, "合计", D("1"), D("0"))


def test_out_of_city_estimate_needs_one_to_three_years():
    assert svc.estimate_out_of_city([D("100.00")]) == D("100.00")
    assert svc.estimate_out_of_city([D("100.00"), D("101.00"), None]) == D("100.50")
    with pytest.raises(ValidationError, match="1至3个年度"):
        svc.estimate_out_of_city([])
    with pytest.raises(ValidationError, match="1至3个年度"):
        svc.estimate_out_of_city([D("1")] * 4)


def test_allocations_must_add_up_to_the_allocatable_budget(plan_world):
    w = plan_world
    plan = svc.save_budget_plan(w["county_user"], w["alliance"], 2025, "居民", D("1000000.00"), D("100000.00"),
                                out_of_city_history=[D("100000.00")])
    # allocatable = 1,000,000.00 − 100,000.00 − 100,000.00 = 800,000.00
    svc.set_member_allocations(w["lead_user"], plan, {w["lead"]: D("500000.00"), w["g1"]: D("200000.00"),
                                                     w["g2"]: D("100000.00")})
    assert svc.check_allocations(plan) == D("800000.00")

    with pytest.raises(ValidationError, match="分配合计799999.99元，应等于可分配额度800000.00元（差额0.01元）"):
        svc.set_member_allocations(w["lead_user"], plan, {w["lead"]: D("499999.99"), w["g1"]: D("300000.00")})
    assert sorted(plan.allocations.values_list("amount", flat=True)) == [
        D("100000.00"), D("200000.00"), D("500000.00"),
    ]  # the refused allocation changed nothing
    with pytest.raises(ValidationError, match="不是.*的成员机构"):
        svc.set_member_allocations(w["lead_user"], plan, {w["stranger"]: D("800000.00")})
    with pytest.raises(PermissionDenied, match="总医院"):
        svc.set_member_allocations(w["county_user"], plan, {w["lead"]: D("800000.00")})


def test_pooling_only_within_one_insurance_type(plan_world):
    w = plan_world
    resident = svc.save_budget_plan(w["county_user"], w["alliance"], 2025, "居民", D("1000.00"), D("0"))
    employee = svc.save_budget_plan(w["county_user"], w["alliance"], 2025, "职工", D("500.00"), D("0"))
    svc.set_member_allocations(w["lead_user"], resident, {w["g1"]: D("600.00"), w["g2"]: D("400.00")})
    svc.set_member_allocations(w["lead_user"], employee, {w["g1"]: D("500.00")})
    r_g1 = MemberAllocation.objects.get(plan=resident, institution=w["g1"])
    r_g2 = MemberAllocation.objects.get(plan=resident, institution=w["g2"])
    e_g1 = MemberAllocation.objects.get(plan=employee, institution=w["g1"])

    svc.pool_between_members(w["lead_user"], r_g1, r_g2, D("150.00"))
    r_g1.refresh_from_db(), r_g2.refresh_from_db()
    assert (r_g1.amount, r_g2.amount) == (D("450.00"), D("550.00"))  # Σ still 1,000.00

    with pytest.raises(ValidationError, match="只能在同险种内调剂"):
        svc.pool_between_members(w["lead_user"], e_g1, r_g2, D("100.00"))
    with pytest.raises(ValidationError, match="不足调出"):
        svc.pool_between_members(w["lead_user"], r_g1, r_g2, D("450.01"))
    e_g1.refresh_from_db()
    assert e_g1.amount == D("500.00")
