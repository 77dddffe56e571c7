"""SPEC §6.5 case points, one rule at a time, with figures worked by hand; and the pure PV / E rules."""

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alliances.models import InstitutionLevel
from settlement.engine.base import RunContext
from settlement.engine.schemes.drg import (
    DrgInputs, DrgParams, budget_tolerance, case_derivation, check_pool_budgets, compute_drg, point_value,
    readmitted_case_ids,
)
from settlement.models import InpatientCase
from tests import factories
from tests.settlement.inpatient_builders import D, case, coefficient, group

CTX = RunContext("drg", 2025)
PARAMS = DrgParams()


@pytest.fixture
def hospital(db):
    return factories.institution(level=InstitutionLevel.SECONDARY)


@pytest.fixture
def patient(db):
    return factories.person()


def points_of(inst, approved=None, params=PARAMS):
    return {row["serial"]: row for row in case_derivation(CTX, params, inst.pk, approved)}


def only_points(inst, approved=None, params=PARAMS):
    rows = points_of(inst, approved, params)
    assert len(rows) == 1
    return next(iter(rows.values()))["points"]


# --- Complete stays, coefficient, TCM uplift, same-price groups ------------------------------------


def test_complete_stay_is_base_times_coefficient(hospital, patient):
    group("G01", "100.0000")
    coefficient(hospital, "1.2000")
    case(hospital, patient, "2025-03-01", "2025-03-08", drg="G01")
    assert only_points(hospital) == D("120.0000")  # 100 × 1.2


def test_coefficient_defaults_to_one_when_none_is_set(hospital, patient):
    group("G01", "80.5000")
    case(hospital, patient, "2025-03-01", "2025-03-08", drg="G01")
    assert only_points(hospital) == D("80.5000")  # 80.5 × 1


def test_coefficient_of_another_year_is_not_used(hospital, patient):
    group("G01", "80.0000")
    coefficient(hospital, "1.5000", year=2024)
    case(hospital, patient, "2025-03-01", "2025-03-08", drg="G01")
    assert only_points(hospital) == D("80.0000")


def test_tcm_support_group_is_uplifted_before_the_coefficient(hospital, patient):
    group("Z01", "100.0000", tcm=True)
    coefficient(hospital, "1.1000")
    case(hospital, patient, "2025-03-01", "2025-03-08", drg="Z01")
    assert only_points(hospital) == D("118.8000")  # 100 × 1.08 = 108; × 1.1 = 118.8


def test_tcm_uplift_is_a_parameter(hospital, patient):
    group("Z01", "100.0000", tcm=True)
    case(hospital, patient, "2025-03-01", "2025-03-08", drg="Z01")
    assert only_points(hospital, params=DrgParams(tcm_uplift=D("1.10"))) == D("110.0000")  # 100 × 1.10


def test_same_price_group_ignores_the_coefficient(hospital, patient):
    group("S01", "50.0000", same_price=True)
    coefficient(hospital, "1.2000")
    case(hospital, patient, "2025-03-01", "2025-03-08", drg="S01")
    assert only_points(hospital) == D("50.0000")  # c = 1 for 同病同价


def test_same_price_tcm_group_keeps_the_uplift(hospital, patient):
    group("S02", "50.0000", same_price=True, tcm=True)
    coefficient(hospital, "1.2000")
    case(hospital, patient, "2025-03-01", "2025-03-08", drg="S02")
    assert only_points(hospital) == D("54.0000")  # 50 × 1.08 × 1


# --- Incomplete stays ---------------------------------------------------------------------------


def test_incomplete_stay_is_scaled_by_cost(hospital, patient):
    group("G01", "100.0000", "10000.00")
    coefficient(hospital, "1.2000")
    case(hospital, patient, "2025-03-01", "2025-03-03", drg="G01", total="5000.00", incomplete=True)
    assert only_points(hospital) == D("60.0000")  # min(100, 100 × 1.2 × 5000 / 10000 = 60)


def test_incomplete_stay_is_capped_at_base_points(hospital, patient):
    group("G01", "100.0000", "10000.00")
    coefficient(hospital, "1.2000")
    case(hospital, patient, "2025-03-01", "2025-03-03", drg="G01", total="9000.00", incomplete=True)
    assert only_points(hospital) == D("100.0000")  # min(100, 100 × 1.2 × 0.9 = 108)


def test_incomplete_stay_cap_is_the_uplifted_base(hospital, patient):
    group("Z01", "100.0000", "10000.00", tcm=True)
    coefficient(hospital, "1.2000")
    case(hospital, patient, "2025-03-01", "2025-03-03", drg="Z01", total="9000.00", incomplete=True)
    assert only_points(hospital) == D("108.0000")  # min(108, 108 × 1.2 × 0.9 = 116.64)


def test_incomplete_stay_rounds_to_four_places(hospital, patient):
    group("G01", "100.0000", "3000.00")
    coefficient(hospital, "1.1500")
    case(hospital, patient, "2025-03-01", "2025-03-03", drg="G01", total="1000.01", incomplete=True)
    # 100 × 1.15 × 1000.01 / 3000 = 115001.15 / 3000 = 38.333716… → 38.3337
    assert only_points(hospital) == D("38.3337")


# --- Bed-day groups -----------------------------------------------------------------------------


def test_bed_day_group_is_points_per_day(hospital, patient):
    group("B01", "100.0000", bed_day_points="2.5000", tcm=True)
    coefficient(hospital, "1.2000")
    case(hospital, patient, "2025-03-01", "2025-03-21", drg="B01")
    assert only_points(hospital) == D("50.0000")  # 2.5 × 20 days; no uplift, no coefficient


def test_bed_day_group_same_day_stay_counts_one_day(hospital, patient):
    group("B01", "100.0000", bed_day_points="2.5000")
    case(hospital, patient, "2025-03-01", "2025-03-01", drg="B01")
    assert only_points(hospital) == D("2.5000")  # 2.5 × max(1, 0)


# --- Approved points ----------------------------------------------------------------------------


def test_approved_points_replace_the_computed_ones(hospital, patient):
    group("G01", "100.0000")
    coefficient(hospital, "1.2000")
    special = case(hospital, patient, "2025-03-01", "2025-03-08", drg="G01", serial="TB1")
    case(hospital, patient, "2025-06-01", "2025-06-08", drg="G01", serial="N1")
    rows = points_of(hospital, {special.pk: D("250.5000")})
    assert rows["TB1"]["points"] == D("250.5000")
    assert rows["N1"]["points"] == D("120.0000")  # 100 × 1.2, untouched


def test_approved_points_give_an_ungrouped_case_its_points(hospital, patient):
    ungrouped = case(hospital, patient, "2025-03-01", "2025-03-08", drg="")
    assert only_points(hospital) == D("0.0000")
    assert only_points(hospital, {ungrouped.pk: D("33.3300")}) == D("33.3300")


# --- Readmission --------------------------------------------------------------------------------


@pytest.mark.parametrize(("readmitted_on", "earlier_points"), [
    ("2025-05-10", D("50.0000")),   # 0 days: same day as the discharge → halved
    ("2025-05-20", D("50.0000")),   # exactly 10 days → halved (inclusive)
    ("2025-05-21", D("100.0000")),  # 11 days → not halved
])
def test_readmission_to_the_same_group_halves_the_earlier_case(hospital, patient, readmitted_on, earlier_points):
    group("G01", "100.0000")
    case(hospital, patient, "2025-05-01", "2025-05-10", drg="G01", serial="EARLY")
    case(hospital, patient, readmitted_on, "2025-05-30", drg="G01", serial="LATE")
    rows = points_of(hospital)
    assert rows["EARLY"]["points"] == earlier_points
    assert rows["LATE"]["points"] == D("100.0000")  # the later case is never halved


def test_readmission_at_another_institution_halves_the_earlier_case(hospital, patient, other_county):
    elsewhere = factories.institution(county=other_county, level=InstitutionLevel.TERTIARY)
    group("G01", "100.0000")
    case(hospital, patient, "2025-05-01", "2025-05-10", drg="G01", serial="EARLY")
    case(elsewhere, patient, "2025-05-15", "2025-05-30", drg="G01", serial="LATE")
    assert points_of(hospital)["EARLY"]["points"] == D("50.0000")
    assert points_of(elsewhere)["LATE"]["points"] == D("100.0000")


def test_one_institutions_readmissions_are_the_citys_restricted_to_its_cases(hospital, patient, other_county):
    """The unit page looks up only its institution's cases as readmitted: the same ids as the city-wide
    lookup, restricted to that institution (the later stay may be anywhere)."""
    elsewhere = factories.institution(county=other_county, level=InstitutionLevel.TERTIARY)
    group("G01", "100.0000")
    case(hospital, patient, "2025-05-01", "2025-05-10", drg="G01", serial="H-EARLY")
    case(elsewhere, patient, "2025-05-15", "2025-05-20", drg="G01", serial="E-MIDDLE")
    case(hospital, patient, "2025-05-25", "2025-05-30", drg="G01", serial="H-LATE")
    first, last = datetime.date(2025, 1, 1), datetime.date(2025, 12, 31)
    serial = dict(InpatientCase.objects.values_list("pk", "serial"))
    city = {serial[pk] for pk in readmitted_case_ids(first, last, PARAMS)}
    assert city == {"H-EARLY", "E-MIDDLE"}  # each followed by a G01 admission within 10 days
    assert {serial[pk] for pk in readmitted_case_ids(first, last, PARAMS, hospital.pk)} == {"H-EARLY"}
    assert {serial[pk] for pk in readmitted_case_ids(first, last, PARAMS, elsewhere.pk)} == {"E-MIDDLE"}


def test_readmission_to_another_group_or_by_another_person_is_not_halved(hospital, patient):
    group("G01", "100.0000")
    group("G02", "70.0000")
    case(hospital, patient, "2025-05-01", "2025-05-10", drg="G01", serial="EARLY")
    case(hospital, patient, "2025-05-12", "2025-05-30", drg="G02", serial="OTHER_GROUP")
    case(hospital, factories.person(), "2025-05-12", "2025-05-30", drg="G01", serial="OTHER_PERSON")
    assert points_of(hospital)["EARLY"]["points"] == D("100.0000")


def test_readmission_early_next_year_halves_this_years_case(hospital, patient):
    group("G01", "100.0000")
    case(hospital, patient, "2025-12-20", "2025-12-28", drg="G01", serial="DECEMBER")
    case(hospital, patient, "2026-01-05", "2026-01-09", drg="G01", serial="JANUARY")  # 8 days later
    rows = points_of(hospital)
    assert set(rows) == {"DECEMBER"}  # the 2026 case belongs to 2026
    assert rows["DECEMBER"]["points"] == D("50.0000")


def test_readmission_counts_a_later_stay_discharged_long_after(hospital, patient):
    group("G01", "100.0000")
    case(hospital, patient, "2025-12-20", "2025-12-28", drg="G01", serial="DECEMBER")
    case(hospital, patient, "2026-01-07", "2026-03-01", drg="G01", serial="LONG")  # admitted 10 days later
    assert points_of(hospital)["DECEMBER"]["points"] == D("50.0000")


def test_readmission_ignores_a_later_stay_paid_by_another_scheme(hospital, patient):
    group("G01", "100.0000")
    case(hospital, patient, "2025-05-01", "2025-05-10", drg="G01", serial="EARLY")
    case(hospital, patient, "2025-05-12", "2025-05-30", drg="G01", bed_day="康复")  # a bed-day stay
    assert points_of(hospital)["EARLY"]["points"] == D("100.0000")


def test_readmission_halves_the_approved_points_too(hospital, patient):
    group("G01", "100.0000")
    special = case(hospital, patient, "2025-05-01", "2025-05-10", drg="G01", serial="EARLY")
    case(hospital, patient, "2025-05-12", "2025-05-30", drg="G01", serial="LATE")
    # SPEC order: approved points replace the computed ones, then the readmission halves them.
    assert points_of(hospital, {special.pk: D("200.0000")})["EARLY"]["points"] == D("100.0000")


def test_readmission_days_and_factor_are_parameters(hospital, patient):
    group("G01", "100.0000")
    case(hospital, patient, "2025-05-01", "2025-05-10", drg="G01", serial="EARLY")
    case(hospital, patient, "2025-05-25", "2025-05-30", drg="G01", serial="LATE")  # 15 days later
    params = DrgParams(readmission_days=15, readmission_factor=D("0.6"))
    assert points_of(hospital, params=params)["EARLY"]["points"] == D("60.0000")  # 100 × 0.6


def test_derivation_shows_each_factor(hospital, patient):
    group("Z01", "100.0000", "10000.00", tcm=True)
    coefficient(hospital, "1.2500")
    case(hospital, patient, "2025-03-01", "2025-03-03", drg="Z01", total="4000.00", incomplete=True, serial="X")
    row = points_of(hospital)["X"]
    assert row["base_points"] == D("100.0000")
    assert row["base_adj"] == D("108.0000")
    assert row["coefficient"] == D("1.2500")
    assert row["incomplete_stay"] is True
    assert row["readmission_factor"] == 1
    assert row["points"] == D("54.0000")  # min(108, 108 × 1.25 × 4000 / 10000 = 54)


# --- Point value and the institution's money (pure) --------------------------------------------


def inputs(points, personal, fund, *, budget, pool_points, pool_personal, institutions=1, code="H33050200001"):
    return DrgInputs(
        unit_code=code, unit_name="测试医院", pool_code="330502-二级及以上", budget=D(budget),
        pool_points=D(pool_points), pool_personal_paid=D(pool_personal), pool_institutions=institutions,
        cases=1, points=D(points), personal_paid=D(personal), fund_paid=D(fund),
    )


def test_point_value_adds_patient_borne_cost_to_the_budget():
    assert point_value(D("24400.00"), D("600.00"), D("250.0000")) == D("100.000000")  # 25000 / 250


def test_point_value_rounds_to_six_places():
    assert point_value(D("1000.00"), D("0.00"), D("3.0000")) == D("333.333333")


def test_institution_figures_by_hand():
    # Pool: B = 24,400; this institution 200 points, personal 500, 统筹支付 20,500; PV = 100 (above).
    outcome = compute_drg(
        inputs("200.0000", "500.00", "20500.00", budget="24400.00", pool_points="250.0000", pool_personal="600.00"),
        PARAMS, paid=D("18000.00"),
    )
    assert outcome.quota == D("20000.00")  # 200 × 100
    assert outcome.entitled == D("19500.00")  # 20000 − 500
    assert outcome.actual == D("20500.00")
    assert outcome.surplus == D("-500.00")  # Q − A
    assert outcome.unit_part == D("-1000.00")  # E − A: it spent 1000 more than it earned
    assert outcome.fund_part == D("500.00")  # = its patients' share, the rest of S
    assert outcome.amount == D("1500.00")  # 19500 − 18000


pool_strategy = st.lists(
    st.tuples(
        st.decimals(min_value=D("0.0001"), max_value=D("50000"), places=4),  # points
        st.decimals(min_value=D("0"), max_value=D("5000000"), places=2),  # personal paid
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(members=pool_strategy, budget=st.decimals(min_value=D("0"), max_value=D("900000000"), places=2))
def test_pool_entitlements_add_up_to_the_budget(members, budget):
    pool_points = sum((points for points, _ in members), D("0"))
    pool_personal = sum((personal for _, personal in members), D("0"))
    outcomes = [
        compute_drg(
            inputs(points, personal, "0.00", budget=budget, pool_points=pool_points, pool_personal=pool_personal,
                   institutions=len(members), code=f"H33050200{n:03d}"),
            PARAMS, paid=D("0.00"),
        )
        for n, (points, personal) in enumerate(members)
    ]
    total = sum((o.entitled for o in outcomes), D("0"))
    assert abs(total - budget) <= budget_tolerance(len(members), pool_points)
    assert check_pool_budgets(outcomes) == []
    for outcome in outcomes:
        assert outcome.quota - outcome.entitled == outcome.fund_part  # Q − E = the patients' share


def test_pool_check_reports_a_budget_gap():
    outcome = compute_drg(
        inputs("200.0000", "500.00", "0.00", budget="24400.00", pool_points="200.0000", pool_personal="500.00"),
        PARAMS, paid=D("0"),
    )
    broken = outcome.__class__(**{**outcome.__dict__, "details": {**outcome.details, "pool_budget": D("30000.00")}})
    warnings = check_pool_budgets([broken])
    assert len(warnings) == 1 and "330502-二级及以上" in warnings[0]
