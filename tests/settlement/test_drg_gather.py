"""SPEC §6.5 from the database: pools, budgets, point values, the budget identity, pre-settlement and
the base-point 测算, all with figures worked by hand."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from alliances.models import InstitutionLevel
from settlement.engine.base import RunContext, get_rule
from settlement.engine.schemes.drg import (
    DrgParams, GroupCostStats, base_point_proposals, budget_tolerance, gather_drg, iqr_fences, propose_base_points,
)
from settlement.engine.schemes.inpatient_common import SchemeInputError
from tests import factories
from tests.settlement.inpatient_builders import D, budget, case, coefficient, disease_standard, group, payment

CTX = RunContext("drg", 2025)
PARAMS = DrgParams()
HIGH = "330502-二级及以上"
LOW = "330502-一级及基层"


def settle(ctx=CTX, params=PARAMS, paid=None):
    rule = get_rule("drg")
    paid = paid or {}
    outcomes = {code: rule.compute(inputs, params, paid.get(code, D("0.00"))) for code, inputs in rule.gather(ctx, params).items()}
    return outcomes, rule.finish(ctx, params, list(outcomes.values()))


@pytest.fixture
def pool(county):
    """Two institutions of the 二级及以上 pool and one of the 一级及基层 pool, in 吴兴区 (330502)."""
    tertiary = factories.institution(county=county, level=InstitutionLevel.TERTIARY)
    secondary = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    township = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS)
    group("G01", "100.0000")
    group("G02", "50.0000")
    return tertiary, secondary, township


def test_point_value_and_entitlements_by_hand(pool):
    tertiary, secondary, township = pool
    budget(HIGH, "24400.00")
    budget(LOW, "1000.00")
    # 三级: 2 × G01 = 200 points, personal 200 + 300 = 500, 统筹支付 7,800 + 12,700 = 20,500.
    case(tertiary, factories.person(), "2025-02-01", "2025-02-05", drg="G01", total="8000.00", personal="200.00")
    case(tertiary, factories.person(), "2025-04-01", "2025-04-05", drg="G01", total="13000.00", personal="300.00")
    # 二级: 1 × G02 = 50 points, personal 100, 统筹支付 3,900.
    case(secondary, factories.person(), "2025-06-01", "2025-06-05", drg="G02", total="4000.00", personal="100.00")
    # 基层: its own pool: 1 × G02 = 50 points, personal 0 → PV = 1000 / 50 = 20.
    case(township, factories.person(), "2025-06-01", "2025-06-05", drg="G02", total="900.00", personal="0.00")
    payment(tertiary.code, "15000.00", scheme="drg")

    outcomes, warnings = settle(paid={tertiary.code: D("15000.00")})

    # PV(二级及以上) = (24,400 + 600) / 250 = 100
    t, s, g = outcomes[tertiary.code], outcomes[secondary.code], outcomes[township.code]
    assert t.details["point_value"] == D("100.000000")
    assert (t.quota, t.entitled, t.actual) == (D("20000.00"), D("19500.00"), D("20500.00"))
    assert t.amount == D("4500.00")  # 19,500 − 15,000 prepaid
    assert (s.quota, s.entitled, s.actual) == (D("5000.00"), D("4900.00"), D("3900.00"))
    assert s.entitled + t.entitled == D("24400.00")  # Σ E = B
    assert g.details["pool_code"] == LOW and g.details["point_value"] == D("20.000000")
    assert g.entitled == D("1000.00")
    assert warnings == []


def test_budget_rows_by_insurance_type_add_up(pool):
    tertiary, _, _ = pool
    budget(HIGH, "6000.00", insurance_type="职工")
    budget(HIGH, "4000.00", insurance_type="居民")
    case(tertiary, factories.person(), "2025-02-01", "2025-02-05", drg="G01", personal="0.00")
    outcomes, _ = settle()
    assert outcomes[tertiary.code].entitled == D("10000.00")  # the one institution gets B = 6,000 + 4,000


def test_missing_pool_budget_stops_the_run(pool):
    tertiary, _, _ = pool
    case(tertiary, factories.person(), "2025-02-01", "2025-02-05", drg="G01")
    with pytest.raises(SchemeInputError, match=HIGH):
        gather_drg(CTX, PARAMS)


def test_budget_without_cases_is_reported(pool):
    tertiary, _, _ = pool
    budget(HIGH, "1000.00")
    budget(LOW, "500.00")
    case(tertiary, factories.person(), "2025-02-01", "2025-02-05", drg="G01")
    _, warnings = settle()
    assert any(LOW in warning and "预算未分配" in warning for warning in warnings)


def test_only_drg_cases_of_the_year_count(pool):
    tertiary, _, _ = pool
    budget(HIGH, "1000.00")
    person = factories.person()
    disease_standard("K35.8", InstitutionLevel.TERTIARY, "6000.00")
    case(tertiary, person, "2025-02-01", "2025-02-05", drg="G01")
    case(tertiary, person, "2025-03-01", "2025-03-05", drg="G01", bed_day="精神")  # bed-day scheme
    case(tertiary, person, "2025-04-01", "2025-04-05", drg="G01", diagnosis="K35.8")  # per-disease scheme
    case(tertiary, person, "2024-12-01", "2024-12-31", drg="G01")  # 2024
    case(tertiary, person, "2025-12-30", "2026-01-02", drg="G02")  # 2026 (discharge date)
    inputs = gather_drg(CTX, PARAMS)[tertiary.code]
    assert inputs.cases == 1 and inputs.points == D("100.0000")


def test_county_run_sees_its_county_and_city_mode_has_one_pool(pool, other_county):
    tertiary, secondary, _ = pool
    elsewhere = factories.institution(county=other_county, level=InstitutionLevel.SECONDARY)
    for inst in (tertiary, elsewhere):
        case(inst, factories.person(), "2025-02-01", "2025-02-05", drg="G01", personal="0.00")
    budget(HIGH, "1000.00")
    budget("330503-二级及以上", "3000.00")
    assert set(gather_drg(RunContext("drg", 2025, "330503"), PARAMS)) == {elsewhere.code}

    budget("330500", "8000.00")  # the city pool is keyed by the city's 区划代码
    outcomes, warnings = settle(params=DrgParams(pool_mode="city"))
    assert {o.details["pool_code"] for o in outcomes.values()} == {"330500"}
    assert outcomes[tertiary.code].entitled == outcomes[elsewhere.code].entitled == D("4000.00")  # 8,000 / 2
    # The city run of the city pool reports the county pools' budgets as unused.
    assert any("330502-二级及以上" in w for w in warnings)


def test_readmission_across_pools_changes_the_earlier_pools_points(pool, other_county):
    tertiary, _, township = pool
    budget(HIGH, "1000.00")
    budget(LOW, "1000.00")
    person = factories.person()
    case(tertiary, person, "2025-02-01", "2025-02-05", drg="G01")
    case(township, person, "2025-02-10", "2025-02-15", drg="G01")  # 5 days later, the other pool
    inputs = gather_drg(CTX, PARAMS)
    assert inputs[tertiary.code].points == D("50.0000") and inputs[tertiary.code].readmitted_cases == 1
    assert inputs[township.code].points == D("100.0000")


def test_ungrouped_cases_are_warned_about(pool):
    tertiary, _, _ = pool
    budget(HIGH, "1000.00")
    case(tertiary, factories.person(), "2025-02-01", "2025-02-05", drg="G01")
    case(tertiary, factories.person(), "2025-02-01", "2025-02-05", drg="XX9")
    outcomes, _ = settle()
    assert any("1例" in w for w in outcomes[tertiary.code].warnings)


def test_prepayment_uses_budget_over_last_years_points(pool):
    tertiary, secondary, _ = pool
    group("G01", "100.0000", year=2024)
    # 2024: the pool had 4 × 100 = 400 points. 2025: B = 40,000 → estimated fund PV = 100 per point.
    for _ in range(4):
        case(secondary, factories.person(), "2024-05-01", "2024-05-05", drg="G01")
    budget(HIGH, "40000.00")
    coefficient(tertiary, "1.1000")
    case(tertiary, factories.person(), "2025-03-01", "2025-03-05", drg="G01")  # 110 points in March
    case(tertiary, factories.person(), "2025-04-01", "2025-04-05", drg="G01")  # April: not this month
    result = get_rule("drg").prepayment_lines(CTX, PARAMS, 3)
    line = result[tertiary.code]
    assert line.points == D("110.0000")
    assert line.estimated_point_value == D("100.000000")  # 40,000 / 400
    assert line.amount == D("9900.00")  # 110 × 100 × 0.90
    assert set(result) == {tertiary.code}
    assert get_rule("drg").prepayment(CTX, PARAMS, 3) == {tertiary.code: D("9900.00")}  # the engine's hook


def test_prepayment_without_last_year_annualises_this_years_points(pool):
    tertiary, _, _ = pool
    budget(HIGH, "36000.00")
    case(tertiary, factories.person(), "2025-01-10", "2025-01-15", drg="G01")  # 100 points
    case(tertiary, factories.person(), "2025-02-10", "2025-02-15", drg="G02")  # 50 points
    # Jan–Feb: 150 points → 150 × 12 / 2 = 900 a year → PV = 36,000 / 900 = 40; Feb: 50 × 40 × 0.9.
    line = get_rule("drg").prepayment_lines(CTX, DrgParams(prepayment_ratio=D("0.90")), 2)[tertiary.code]
    assert line.estimated_point_value == D("40.000000")
    assert line.amount == D("1800.00")


# --- The budget identity on random data in the database ------------------------------------------


class TestBudgetIdentity(HypothesisTestCase):
    @settings(max_examples=15, deadline=None)
    @given(
        cases=st.lists(
            st.tuples(
                st.integers(0, 3),  # institution
                st.sampled_from(["G01", "G02", "G03"]),
                st.integers(0, 364),  # admission day of the year
                st.integers(0, 20),  # length of stay
                st.decimals(min_value=D("100"), max_value=D("90000"), places=2),  # total cost
                st.integers(0, 100),  # personal share %
                st.booleans(),  # incomplete
            ),
            min_size=1, max_size=25,
        ),
        amount=st.decimals(min_value=D("1000"), max_value=D("50000000"), places=2),
    )
    def test_sum_of_entitlements_is_the_pool_budget(self, cases, amount):
        import datetime

        county = factories.region()
        institutions = [factories.institution(county=county, level=InstitutionLevel.SECONDARY) for _ in range(4)]
        for i, inst in enumerate(institutions[:2]):
            coefficient(inst, f"1.{i + 1}000")
        group("G01", "100.0000", "10000.00")
        group("G02", "37.1234", "3000.00", tcm=True)
        group("G03", "12.0000", bed_day_points="1.3333")
        budget(HIGH, amount)
        people = [factories.person() for _ in range(3)]
        for n, (inst, drg, start, los, total, share, incomplete) in enumerate(cases):
            admission = datetime.date(2025, 1, 1) + datetime.timedelta(days=start)
            discharge = min(admission + datetime.timedelta(days=los), datetime.date(2025, 12, 31))
            case(institutions[inst], people[n % 3], admission.isoformat(), discharge.isoformat(), drg=drg,
                 total=total, personal=(total * share / 100).quantize(D("0.01")), incomplete=incomplete)
        outcomes, warnings = settle()
        total_entitled = sum((o.entitled for o in outcomes.values()), D("0"))
        pool_points = next(iter(outcomes.values())).details["pool_points"]
        assert abs(total_entitled - amount) <= budget_tolerance(len(outcomes), pool_points)
        assert warnings == []


# --- Base-point 测算 -------------------------------------------------------------------------------


def test_iqr_fences_by_hand():
    assert iqr_fences(D("200"), D("400")) == (D("-100.0"), D("700.0"))  # IQR 200; 200 − 300, 400 + 300


def test_base_points_from_group_statistics():
    stats = [
        GroupCostStats("A", 4, 4, D("1000"), D("300000")),  # 100..400: mean 250, Σx² = 10000+40000+90000+160000
        GroupCostStats("B", 4, 4, D("4000"), D("4000000")),  # 4 × 1000
    ]
    proposals = {p.drg_code: p for p in propose_base_points(stats, D("0.4"))}
    # Overall average = 5000 / 8 = 625 → A = 250 / 625 × 100 = 40, B = 1000 / 625 × 100 = 160.
    assert proposals["A"].base_points == D("40.0000")
    assert proposals["B"].base_points == D("160.0000")
    # A: population variance = 300000 / 4 − 250² = 12500, sd = 111.80339…, CV = 0.44721… > 0.4
    assert proposals["A"].cv == D("0.4472") and proposals["A"].cv_exceeded
    assert proposals["B"].cv == D("0.0000") and not proposals["B"].cv_exceeded


def test_base_point_proposals_trim_each_group_by_iqr(county):
    inst = factories.institution(county=county)
    person = factories.person()

    def costs(drg, values, **kwargs):
        discharge = kwargs.pop("discharge", "2024-06-05")
        for value in values:
            case(inst, person, discharge, discharge, drg=drg, total=value, personal="0.00", **kwargs)

    costs("A", ["100", "200", "300", "400", "10000"])  # n=5: Q1 = x1 = 200, Q3 = x3 = 400; fences [−100, 700]
    costs("B", ["1000", "1000", "1000"])
    costs("B", ["1000"], discharge="2023-06-05")  # two years back (2023–2024 for 2025): counts
    # n=8: h1 = 1.75 → Q1 = 20 + 0.75 × 10 = 27.5; h3 = 5.25 → Q3 = 60 + 0.25 × 10 = 62.5; IQR = 35;
    # fences [27.5 − 52.5, 62.5 + 52.5] = [−25, 115] → 200 is trimmed; mean of 10..70 = 40.
    costs("D", ["10", "20", "30", "40", "50", "60", "70", "200"])
    costs("A", ["99999"], discharge="2022-06-05")  # three years back: ignored
    costs("A", ["99999"], incomplete=True)  # incomplete stay: ignored
    costs("A", ["99999"], bed_day="康复")  # bed-day scheme: ignored

    proposals = {p.drg_code: p for p in base_point_proposals(2025, DrgParams())}
    # Trimmed: A 1000 / 4, B 4000 / 4, D 280 / 7 → overall average = 5280 / 15 = 352.
    assert proposals["A"].cases_before_trim == 5 and proposals["A"].cases == 4
    assert proposals["A"].base_points == D("71.0227")  # 250 / 352 × 100 = 71.022727…
    assert proposals["B"].base_points == D("284.0909")  # 1000 / 352 × 100 = 284.090909…
    assert proposals["D"].cases == 7
    assert proposals["D"].average_cost == D("40.00")
    assert proposals["D"].base_points == D("11.3636")  # 40 / 352 × 100 = 11.363636…


# --- Through the engine (policy row → run → stored results) -----------------------------------------


def test_engine_runs_the_drg_scheme_end_to_end(pool):
    from settlement.engine import services
    from settlement.engine.models import PaymentPolicy, RunStatus
    from settlement.models import ApprovalStatus

    tertiary, secondary, _ = pool
    PaymentPolicy.objects.create(scheme="drg", year=2025, name="DRG点数法", parameters={"prepayment_ratio": "0.90"},
                                 status=ApprovalStatus.APPROVED)
    budget(HIGH, "24400.00")
    case(tertiary, factories.person(), "2025-02-01", "2025-02-05", drg="G01", total="8000.00", personal="200.00")
    case(tertiary, factories.person(), "2025-04-01", "2025-04-05", drg="G01", total="13000.00", personal="300.00")
    case(secondary, factories.person(), "2025-06-01", "2025-06-05", drg="G02", total="4000.00", personal="100.00")
    run = services.start_run("drg", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    results = {r.unit_code: r for r in run.results.all()}
    assert results[tertiary.code].entitled == D("19500.00")  # 200 × PV 100 − 500 (as worked above)
    assert results[secondary.code].entitled == D("4900.00")
    assert run.warnings == []


def test_engine_reports_a_missing_budget_as_the_failure_reason(pool):
    from settlement.engine import services
    from settlement.engine.models import PaymentPolicy, RunStatus
    from settlement.models import ApprovalStatus

    tertiary, _, _ = pool
    PaymentPolicy.objects.create(scheme="drg", year=2025, name="DRG点数法", status=ApprovalStatus.APPROVED)
    case(tertiary, factories.person(), "2025-02-01", "2025-02-05", drg="G01")
    run = services.start_run("drg", 2025, sync=True)
    assert run.status == RunStatus.FAILED
    assert HIGH in run.failure_reason and "预算" in run.failure_reason
