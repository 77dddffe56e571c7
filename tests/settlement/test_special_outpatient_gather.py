"""Gathering the 二类门特 scheme from real rows (SPEC §6.2): who is an actual head, weights, A, k, 测算."""
import datetime
import itertools
from decimal import Decimal

import pytest

from contracts.models import DiseaseCategory, DiseaseRegistration
from settlement.engine.base import RunContext, get_rule
from settlement.engine.services import SettlementError
from settlement.engine.schemes.special_outpatient import (
    SpecialOutpatientParams, gather_inputs, propose_special_standards,
)
from settlement.models import (
    ApprovalStatus, Budget, OutpatientClaim, Scheme, SpecialDesignation, SpecialStandard, VisitType,
)
from tests import factories

D = Decimal
YEAR = 2026
PARAMS = SpecialOutpatientParams()
CTX = RunContext("special_outpatient", YEAR)
_serials = itertools.count(1)


def claim(person, inst, disease, fund_paid, day=datetime.date(YEAR, 3, 15), visit_type=VisitType.SPECIAL_CLASS2):
    fund = D(fund_paid)
    return OutpatientClaim.objects.create(
        institution=inst, serial=f"S{next(_serials):08d}", person=person, visit_date=day,
        insurance_type=person.insurance_type, visit_type=visit_type, disease=disease,
        total_cost=fund + D("10.00"), fund_paid=fund, personal_paid=D("10.00"),
    )


def designate(person, disease, inst, year=YEAR):
    return SpecialDesignation.objects.create(year=year, person=person, disease=disease, institution=inst)


def standard(disease, amount, year=YEAR, status=ApprovalStatus.APPROVED):
    return SpecialStandard.objects.create(year=year, disease=disease, amount=D(amount), status=status)


def class1_registration(person, filed_on, ended_on=None, category=DiseaseCategory.SPECIAL_CLASS1):
    return DiseaseRegistration.objects.create(
        person=person, disease=factories.disease(category=category), filed_on=filed_on, ended_on=ended_on,
    )


@pytest.fixture
def world(county, other_county):
    """Two institutions in one county, one in another; two 二类门特 diseases with approved standards."""
    x = factories.disease(category=DiseaseCategory.SPECIAL_CLASS2)
    y = factories.disease(category=DiseaseCategory.SPECIAL_CLASS2)
    standard(x, "1200.00")
    standard(y, "3000.00")
    return {
        "a": factories.institution(county=county),
        "b": factories.institution(county=county),
        "c": factories.institution(county=other_county),
        "x": x,
        "y": y,
        "young": datetime.date(1980, 6, 1),
    }


def test_a_designation_without_a_claim_is_planned_but_not_an_actual_head(world):
    p = factories.person(birth=world["young"])
    designate(p, world["x"], world["a"])
    unit = gather_inputs(CTX, PARAMS)[world["a"].code]
    assert unit.heads_by_disease == {}
    assert unit.planned_heads_by_disease == {world["x"].code: 1}
    assert unit.weighted_sum == D("0")
    assert unit.plan_quota == D("1200.00")  # one planned head, w = 1, k_plan = 1


def test_a_claim_at_another_institution_makes_no_head_and_no_spending(world):
    p = factories.person(birth=world["young"])
    designate(p, world["x"], world["a"])
    claim(p, world["b"], world["x"], "800.00")
    inputs = gather_inputs(CTX, PARAMS)
    assert inputs[world["a"].code].heads_by_disease == {}
    assert inputs[world["a"].code].actual == D("0")
    assert world["b"].code not in inputs  # no designation there: not a unit


def test_claims_outside_the_year_or_of_another_kind_or_disease_make_no_head(world):
    p = factories.person(birth=world["young"])
    designate(p, world["x"], world["a"])
    claim(p, world["a"], world["x"], "100.00", day=datetime.date(YEAR - 1, 12, 31))
    claim(p, world["a"], world["x"], "100.00", day=datetime.date(YEAR + 1, 1, 1))
    claim(p, world["a"], world["x"], "100.00", visit_type=VisitType.CHRONIC)
    claim(p, world["a"], world["y"], "100.00")  # Y is not designated for this person
    unit = gather_inputs(CTX, PARAMS)[world["a"].code]
    assert unit.heads_by_disease == {}
    assert unit.actual == D("0")


def test_a_person_with_two_category2_diseases_is_a_head_in_each(world):
    p = factories.person(birth=world["young"])
    designate(p, world["x"], world["a"])
    designate(p, world["y"], world["a"])
    claim(p, world["a"], world["x"], "500.00", day=datetime.date(YEAR, 1, 1))
    claim(p, world["a"], world["y"], "700.00", day=datetime.date(YEAR, 12, 31))
    unit = gather_inputs(CTX, PARAMS)[world["a"].code]
    assert unit.heads_by_disease == {world["x"].code: 1, world["y"].code: 1}
    assert unit.weighted_sum == D("4200.00")  # 1,200 + 3,000, w = 1
    assert unit.actual == D("1200.00")  # 500 + 700


def test_age_65_on_1_january_is_the_boundary(world):
    # Born 1961-01-01: 65 on 2026-01-01 → w = 1.2. Born 1961-01-02: still 64 that day → w = 1.
    aged = factories.person(birth=datetime.date(1961, 1, 1))
    not_yet = factories.person(birth=datetime.date(1961, 1, 2))
    for p in (aged, not_yet):
        designate(p, world["x"], world["a"])
        claim(p, world["a"], world["x"], "100.00")
    unit = gather_inputs(CTX, PARAMS)[world["a"].code]
    assert unit.standard_sum == D("2400.00")
    assert unit.weighted_sum == D("2640.00")  # 1,200 × 1.2 + 1,200 × 1


@pytest.mark.parametrize(
    ("filed_on", "ended_on", "category", "weighted"),
    [
        (datetime.date(2024, 3, 1), datetime.date(YEAR - 1, 12, 31), DiseaseCategory.SPECIAL_CLASS1, "1200.00"),
        (datetime.date(2024, 3, 1), datetime.date(YEAR, 1, 1), DiseaseCategory.SPECIAL_CLASS1, "1560.00"),
        (datetime.date(YEAR, 12, 31), None, DiseaseCategory.SPECIAL_CLASS1, "1560.00"),
        (datetime.date(YEAR + 1, 1, 1), None, DiseaseCategory.SPECIAL_CLASS1, "1200.00"),
        (datetime.date(2024, 3, 1), None, DiseaseCategory.CHRONIC, "1200.00"),
    ],
    ids=["ended-before-the-year", "ended-on-1-january", "filed-31-december", "filed-next-year", "chronic-not-class1"],
)
def test_category1_registration_weighs_when_in_force_on_some_day_of_the_year(
    world, filed_on, ended_on, category, weighted,
):
    # In force → w = 1.3 → 1,200 × 1.3 = 1,560.00; otherwise w = 1 → 1,200.00.
    p = factories.person(birth=world["young"])
    class1_registration(p, filed_on, ended_on, category)
    designate(p, world["x"], world["a"])
    claim(p, world["a"], world["x"], "100.00")
    assert gather_inputs(CTX, PARAMS)[world["a"].code].weighted_sum == D(weighted)


def test_a_disease_without_approved_standard_warns_and_adds_nothing(world):
    z = factories.disease(category=DiseaseCategory.SPECIAL_CLASS2)
    standard(z, "9999.00", status=ApprovalStatus.DRAFT)  # a draft is not used
    p = factories.person(birth=world["young"])
    designate(p, z, world["a"])
    claim(p, world["a"], z, "300.00")
    unit = gather_inputs(CTX, PARAMS)[world["a"].code]
    assert unit.heads_by_disease == {z.code: 1}
    assert unit.weighted_sum == D("0")
    assert unit.actual == D("300.00")  # the spending is still the institution's
    assert len(unit.warnings) == 1 and z.code in unit.warnings[0]
    outcome = get_rule("special_outpatient").compute(unit, PARAMS, D("0"))
    assert outcome.quota == D("0.00") and outcome.warnings == unit.warnings


@pytest.fixture
def city(world):
    """A small city worked by hand.

    Standards X = 1,200.00, Y = 3,000.00.
    Institution a: p1 X (w 1), p2 X aged (w 1.2), p3 Y with 一类门特 (w 1.3), p5 X designated without claim.
    Institution c (other county): p4 Y (w 1).
    Actual heads: Σ S = 1,200 + 1,200 + 3,000 + 3,000 = 8,400; Σ S·w = 1,200 + 1,440 + 3,900 + 3,000 = 9,540.
    """
    a, c, x, y = world["a"], world["c"], world["x"], world["y"]
    p1 = factories.person(birth=world["young"])
    p2 = factories.person(birth=datetime.date(1950, 1, 1))
    p3 = factories.person(birth=world["young"])
    p4 = factories.person(birth=world["young"])
    p5 = factories.person(birth=world["young"])
    class1_registration(p3, datetime.date(2020, 1, 1))
    for p, d, inst in ((p1, x, a), (p2, x, a), (p3, y, a), (p4, y, c), (p5, x, a)):
        designate(p, d, inst)
    claim(p1, a, x, "1500.00")
    claim(p1, a, x, "500.00")
    claim(p2, a, x, "1500.00")
    claim(p3, a, y, "2500.00")
    claim(p4, c, y, "2000.00")
    claim(p5, a, y, "999.00")  # p5 has no designation for Y: neither a head nor A
    return world


def test_hand_worked_city_through_gather_and_compute(city):
    # Run for a's county only: k is still the city's, 8,400 / 9,540.
    # Q_a = 6,540 × 8,400 / 9,540 = 5,758.4905… → 5,758.49.
    # A_a = 1,500 + 500 + 1,500 + 2,500 = 6,000.00 → S = −241.51, O = 241.51 ≤ band 575.849;
    # fund 0.4 × 241.51 = 96.604; institution 241.51 − 96.604 = 144.906 → 144.91;
    # unit part −144.91, fund part −241.51 + 144.91 = −96.60; E = 6,000.00 − 144.91 = 5,855.09;
    # prepaid 5,000.00 → year-end 855.09.
    inputs = gather_inputs(RunContext("special_outpatient", YEAR, city["a"].county.code), PARAMS)
    assert set(inputs) == {city["a"].code}
    unit = inputs[city["a"].code]
    assert unit.heads_by_disease == {city["x"].code: 2, city["y"].code: 1}
    assert unit.planned_heads_by_disease == {city["x"].code: 3, city["y"].code: 1}
    assert unit.weighted_sum == D("6540.00")
    assert unit.calibration == D("8400") / D("9540")
    outcome = get_rule("special_outpatient").compute(unit, PARAMS, D("5000.00"))
    assert outcome.quota == D("5758.49")
    assert outcome.actual == D("6000.00")
    assert outcome.unit_part == D("-144.91")
    assert outcome.fund_part == D("-96.60")
    assert outcome.entitled == D("5855.09")
    assert outcome.amount == D("855.09")


def test_city_quotas_add_up_to_the_city_standards(city):
    # Q_a = 5,758.49 and Q_c = 3,000 × 8,400 / 9,540 = 2,641.5094… → 2,641.51; together 8,400.00 = Σ S.
    rule = get_rule("special_outpatient")
    inputs = gather_inputs(CTX, PARAMS)
    assert {code: rule.compute(unit, PARAMS, D("0")).quota for code, unit in inputs.items()} == {
        city["a"].code: D("5758.49"), city["c"].code: D("2641.51"),
    }


def test_prepayment_uses_planned_heads(city):
    # Planned heads add p5 (X, w 1) at a: Σ S = 9,600, Σ S·w = 10,740.
    # Q_plan,a = 7,740 × 9,600 / 10,740 = 6,918.4357… → 6,918.44; monthly 6,918.44 / 12 × 0.95 = 547.7098… → 547.71.
    # Q_plan,c = 3,000 × 9,600 / 10,740 = 2,681.5642… → 2,681.56; monthly 2,681.56 / 12 × 0.95 = 212.2901… → 212.29.
    rule = get_rule("special_outpatient")
    assert rule.prepayment(CTX, PARAMS, 1) == {city["a"].code: D("547.71"), city["c"].code: D("212.29")}
    county_only = RunContext("special_outpatient", YEAR, city["c"].county.code)
    assert rule.prepayment(county_only, PARAMS, 12) == {city["c"].code: D("212.29")}
    with pytest.raises(ValueError):
        rule.prepayment(CTX, PARAMS, 13)


def test_a_run_for_the_city_code_covers_every_county(city):
    inputs = gather_inputs(RunContext("special_outpatient", YEAR, factories.CITY_CODE), PARAMS)
    assert set(inputs) == {city["a"].code, city["c"].code}


# --- 测算 ---------------------------------------------------------------------------------------


def test_proposal_writes_drafts_from_last_years_heads_and_keeps_approved_rows(county):
    inst = factories.institution(county=county)
    x = factories.disease(category=DiseaseCategory.SPECIAL_CLASS2)
    y = factories.disease(category=DiseaseCategory.SPECIAL_CLASS2)
    last = YEAR - 1
    p1, p2, p3, p4, p5 = (factories.person(county=county) for _ in range(5))
    # Last year: X heads p1 (1,000 + 500) and p2 (1,500) → h_X = 3,000 / 2 = 1,500;
    # Y head p3 (4,000) → h_Y = 4,000; p4 designated without claim is no head; p5's claim has no designation.
    for p, d in ((p1, x), (p2, x), (p3, y), (p4, y)):
        designate(p, d, inst, year=last)
    day = datetime.date(last, 6, 1)
    claim(p1, inst, x, "1000.00", day=day)
    claim(p1, inst, x, "500.00", day=day)
    claim(p2, inst, x, "1500.00", day=day)
    claim(p3, inst, y, "4000.00", day=day)
    claim(p5, inst, y, "8000.00", day=day)
    # This year: N_X = 3, N_Y = 1 → Σ h·N = 4,500 + 4,000 = 8,500; B = 17,000 → scale 2;
    # S_X = 3,000.00, S_Y = 8,000.00 (Σ S·N = 9,000 + 8,000 = 17,000 = B).
    for p in (p1, p2, p4):
        designate(p, x, inst)
    designate(p3, y, inst)
    Budget.objects.create(
        year=YEAR, scheme=Scheme.SPECIAL_OUTPATIENT, unit_code=factories.CITY_CODE, amount=D("17000.00"),
    )
    standard(y, "7777.00")  # already approved: never overwritten
    standard(x, "1.00", status=ApprovalStatus.DRAFT)  # an older draft is replaced

    result = propose_special_standards(YEAR)

    assert result.proposal.standards == {x.code: D("3000.00"), y.code: D("8000.00")}
    assert result.written == (x.code,)
    assert result.kept_approved == (y.code,)
    rows = {s.disease_id: (s.amount, s.status) for s in SpecialStandard.objects.filter(year=YEAR)}
    assert rows == {x.pk: (D("3000.00"), ApprovalStatus.DRAFT), y.pk: (D("7777.00"), ApprovalStatus.APPROVED)}


def test_proposal_without_budget_or_history_says_so(county):
    with pytest.raises(SettlementError, match="缺少2026年度二类门特预算"):
        propose_special_standards(YEAR)
    Budget.objects.create(year=YEAR, scheme=Scheme.SPECIAL_OUTPATIENT, unit_code=factories.CITY_CODE, amount=D("1.00"))
    with pytest.raises(SettlementError, match="无法测算.*2025"):
        propose_special_standards(YEAR)


def test_only_the_city_bureau_proposes(county, make_user):
    with pytest.raises(SettlementError, match="没有权限"):
        propose_special_standards(YEAR, user=make_user("county", county.code))


# --- Through the engine -----------------------------------------------------------------------


def test_twelve_prepayments_then_year_end_through_the_engine(city):
    from settlement.engine.models import PaymentPolicy, RunStatus, UnitResult
    from settlement.engine.params import defaults_of
    from settlement.engine.services import run_prepayment, start_run

    PaymentPolicy.objects.create(
        scheme="special_outpatient", year=YEAR, name="攀枝花", status=ApprovalStatus.APPROVED,
        parameters=defaults_of(SpecialOutpatientParams),
    )
    for month in range(1, 13):
        run_prepayment("special_outpatient", YEAR, month)
    # Institution a: 12 × 547.71 = 6,572.52 prepaid (see test_prepayment_uses_planned_heads).
    # Year-end (test_hand_worked_city_through_gather_and_compute): E = 5,855.09 → 5,855.09 − 6,572.52 = −717.43.
    # Institution c: Q = 2,641.51, A = 2,000.00 → S = 641.51, unit 0.8 × 641.51 = 513.208 → 513.21,
    # E = 2,513.21; prepaid 12 × 212.29 = 2,547.48 → −34.27.
    run = start_run("special_outpatient", YEAR, sync=True)
    results = {r.unit_code: r for r in UnitResult.objects.filter(run=run)}
    a, c = results[city["a"].code], results[city["c"].code]
    assert (a.quota, a.entitled, a.paid, a.amount) == (D("5758.49"), D("5855.09"), D("6572.52"), D("-717.43"))
    assert (c.quota, c.unit_part, c.fund_part, c.entitled) == (D("2641.51"), D("513.21"), D("128.30"), D("2513.21"))
    assert (c.paid, c.amount) == (D("2547.48"), D("-34.27"))
    assert a.details["校正系数k"] == str(D("8400") / D("9540"))
    assert run.status == RunStatus.COMPUTED, run.failure_reason


def test_gather_runs_the_same_queries_for_one_head_or_many(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def heads(n):
        for _ in range(n):
            p = factories.person(birth=world["young"])
            class1_registration(p, datetime.date(2020, 1, 1))
            designate(p, world["x"], world["a"])
            claim(p, world["a"], world["x"], "100.00")

    heads(1)
    with CaptureQueriesContext(connection) as few:
        gather_inputs(CTX, PARAMS)
    heads(6)
    with CaptureQueriesContext(connection) as many:
        gather_inputs(CTX, PARAMS)
    assert len(many) == len(few)
