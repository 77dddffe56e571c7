"""SPEC §10 DRG indices on hand-made cases; every expected figure is worked out in the comments."""
import pytest

from alliances.models import InstitutionLevel
from settlement.analysis import drg as analysis
from settlement.engine import services
from settlement.engine.models import PaymentPolicy, RunStatus
from settlement.models import ApprovalStatus, InpatientCase
from tests import factories
from tests.settlement.inpatient_builders import D, budget, case, group

POOL = "330502-二级及以上"


def died(*cases):
    InpatientCase.objects.filter(pk__in=[c.pk for c in cases]).update(discharge_mode="5")


def by_institution(rows, level="institution"):
    return {(r.institution_id if r.institution_id is not None else r.pool_code): r for r in rows if r.level == level}


@pytest.fixture
def two_hospitals(county):
    a = factories.institution(county=county, level=InstitutionLevel.TERTIARY)
    b = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    group("G1", "100.0000", "10000.00")  # RW 1.0
    group("G2", "200.0000", "20000.00")  # RW 2.0
    return a, b


def small_table(a, b):
    """The table of the first test.

    | inst | group | cost   | LOS |
    | A    | G1    |  8000  | 4   |
    | A    | G1    | 12000  | 6   |
    | A    | G2    | 30000  | 12  |
    | A    | ZZ9   |  5000  | 3   |  (ZZ9 is not in the 2025 catalogue: ungrouped)
    | A    | ''    |  4000  | 2   |  (no group at all)
    | B    | G1    | 10000  | 5   |
    | B    | G2    | 10000  | 8   |
    City means: G1 cost (8000+12000+10000)/3 = 10000, LOS (4+6+5)/3 = 5;
                G2 cost (30000+10000)/2 = 20000, LOS (12+8)/2 = 10.
    """
    p = factories.person()
    case(a, p, "2025-01-01", "2025-01-05", drg="G1", total="8000.00")
    case(a, p, "2025-02-01", "2025-02-07", drg="G1", total="12000.00")
    case(a, p, "2025-03-01", "2025-03-13", drg="G2", total="30000.00")
    case(a, p, "2025-04-01", "2025-04-04", drg="ZZ9", total="5000.00")
    case(a, p, "2025-05-01", "2025-05-03", drg="", total="4000.00")
    case(b, p, "2025-01-10", "2025-01-15", drg="G1", total="10000.00")
    case(b, p, "2025-06-01", "2025-06-09", drg="G2", total="10000.00")


def test_cases_groups_grouping_rate_cmi_and_both_consumption_indices(two_hospitals):
    a, b = two_hospitals
    small_table(a, b)
    rows = analysis.indices(2025, ("institution", "pool"))
    ia, ib, pool = by_institution(rows)[a.pk], by_institution(rows)[b.pk], by_institution(rows, "pool")[POOL]
    # A: 5 DRG-scheme cases, 3 of them in the catalogue (G1, G1, G2) → 入组率 3/5 = 0.6; groups {G1, G2} = 2
    assert (ia.cases, ia.grouped_cases, ia.groups, ia.grouping_rate) == (5, 3, 2, D("0.6000"))
    # CMI over the grouped cases: (1 + 1 + 2) / 3 = 1.3333
    assert ia.cmi == D("1.3333")
    # 费用消耗指数: Σ n_g·(mean_Ag / city_g) / Σ n_g = (2 × 10000/10000 + 1 × 30000/20000) / 3 = 3.5/3 = 1.1667
    assert ia.cost_index == D("1.1667")
    # 时间消耗指数: (2 × 5/5 + 1 × 12/10) / 3 = 3.2/3 = 1.0667
    assert ia.time_index == D("1.0667")
    # B: 2 cases, both grouped → 1.0000; CMI (1 + 2)/2 = 1.5; cost (10000/10000 + 10000/20000)/2 = 0.75;
    # time (5/5 + 8/10)/2 = 0.9
    assert (ib.cases, ib.groups, ib.grouping_rate, ib.cmi) == (2, 2, D("1.0000"), D("1.5000"))
    assert (ib.cost_index, ib.time_index) == (D("0.7500"), D("0.9000"))
    # The pool holds every case of the city: 7 cases, 5 grouped → 5/7 = 0.7143; CMI (1+1+2+1+2)/5 = 1.4;
    # and a unit that is the whole city sits at the city average: both indices exactly 1.
    assert (pool.cases, pool.grouping_rate, pool.cmi) == (7, D("0.7143"), D("1.4000"))
    assert (pool.cost_index, pool.time_index) == (D("1.0000"), D("1.0000"))


def test_the_weighted_index_is_one_for_institutions_at_the_city_average_in_every_group(county):
    x, y, z = (factories.institution(county=county) for _ in range(3))
    group("G1", "100.0000", "10000.00")
    group("G2", "200.0000", "20000.00")
    p = factories.person()
    # X: G1 9000, 11000 (mean 10000); G2 20000.  Y: G1 6000, 14000 (mean 10000); G2 15000, 25000 (mean 20000).
    # Z: G1 10000.  City G1 = (9000+11000+6000+14000+10000)/5 = 10000; G2 = (20000+15000+25000)/3 = 20000.
    # Each institution's mean equals the city's in every group it treats, with different case mixes.
    for inst, drg, total, stay in [
        (x, "G1", "9000.00", 3), (x, "G1", "11000.00", 7), (x, "G2", "20000.00", 10),
        (y, "G1", "6000.00", 5), (y, "G1", "14000.00", 5), (y, "G2", "15000.00", 8), (y, "G2", "25000.00", 12),
        (z, "G1", "10000.00", 5),
    ]:
        case(inst, p, "2025-03-01", f"2025-03-{1 + stay:02d}", drg=drg, total=total)
    rows = by_institution(analysis.indices(2025, ("institution",)))
    # LOS: G1 city (3+7+5+5+5)/5 = 5, X mean 5, Y mean 5, Z 5; G2 city (10+8+12)/3 = 10, X 10, Y 10.
    for inst in (x, y, z):
        assert rows[inst.pk].cost_index == D("1.0000")
        assert rows[inst.pk].time_index == D("1.0000")


def test_low_risk_mortality_counts_only_groups_more_than_one_sd_below_the_mean(county):
    a, b = factories.institution(county=county), factories.institution(county=county)
    for code in ("L1", "M2", "M3", "M4"):
        group(code, "100.0000", "10000.00")
    p = factories.person()
    made = {code: [case(a if i < 5 else b, p, "2025-05-01", "2025-05-04", drg=code) for i in range(10)]
            for code in ("L1", "M2", "M3", "M4")}
    # City mortality: L1 1/10 = 0.1 (the death at A); M2, M3, M4 5/10 = 0.5 (three at A, two at B each).
    # Mean of the rates (0.1 + 0.5 × 3)/4 = 0.4; population SD √((0.3² + 3 × 0.1²)/4) = √0.03 = 0.1732;
    # mean − SD = 0.2268: only L1 lies below it, so L1 is the one low-risk group.
    died(made["L1"][0])
    for code in ("M2", "M3", "M4"):
        died(*made[code][:3], *made[code][5:7])
    rows = by_institution(analysis.indices(2025, ("institution", "pool")))
    # A: 1 death among its 5 L1 cases → 0.2 (its 9 deaths in M2–M4 do not count); B: 0 of 5 → 0.
    assert (rows[a.pk].low_risk_deaths, rows[a.pk].low_risk_cases, rows[a.pk].low_risk_mortality) == (1, 5, D("0.2000"))
    assert (rows[b.pk].low_risk_deaths, rows[b.pk].low_risk_cases, rows[b.pk].low_risk_mortality) == (0, 5, D("0.0000"))


def test_no_low_risk_group_when_every_group_has_the_same_mortality(two_hospitals):
    a, b = two_hospitals
    small_table(a, b)  # nobody died: every rate 0, SD 0, nothing lies below the mean
    rows = by_institution(analysis.indices(2025, ("institution",)))
    assert rows[a.pk].low_risk_cases == 0 and rows[a.pk].low_risk_mortality is None


def test_high_and_low_multiple_cases_at_the_thresholds(two_hospitals):
    a, b = two_hospitals  # A 三级 (high > 3 × 病组均次费用), B 二级 (> 2 ×); G1 病组均次费用 10000.00
    p = factories.person()
    for total in ("30000.00", "30000.01", "4000.00", "3999.99"):
        case(a, p, "2025-03-01", "2025-03-05", drg="G1", total=total, personal="0.00")
    for total in ("20000.00", "20000.01", "4000.01"):
        case(b, p, "2025-03-01", "2025-03-05", drg="G1", total=total, personal="0.00")
    rows = by_institution(analysis.indices(2025, ("institution", "institution_group")))
    # A: 30000.00 = 3 × 10000 is not above; 30000.01 is → 1 high. 4000.00 = 0.4 × 10000 is not below;
    # 3999.99 is → 1 low.  B: 20000.01 > 2 × 10000 → 1 high; 20000.00 is not; 4000.01 is not low.
    assert (rows[a.pk].high_cases, rows[a.pk].low_cases) == (1, 1)
    assert (rows[b.pk].high_cases, rows[b.pk].low_cases) == (1, 0)


def test_settlement_balance_per_group_is_points_times_the_runs_point_value_minus_fund_paid(two_hospitals):
    a, b = two_hospitals
    a.level = InstitutionLevel.SECONDARY  # coefficient 1 for both (none set); same pool
    a.save()
    PaymentPolicy.objects.create(scheme="drg", year=2025, name="DRG点数法", parameters={},
                                 status=ApprovalStatus.APPROVED)
    p = factories.person()
    case(a, p, "2025-02-01", "2025-02-05", drg="G1", total="10000.00", personal="2000.00")  # 100 points, fund 8000
    case(a, p, "2025-04-01", "2025-04-05", drg="G2", total="15000.00", personal="3000.00")  # 200 points, fund 12000
    case(b, p, "2025-06-01", "2025-06-05", drg="G2", total="20000.00", personal="4000.00")  # 200 points, fund 16000
    # PV = (B + Σ personal) / Σ points = (21000 + 9000) / 500 = 60
    budget(POOL, "21000.00")
    assert analysis.indices(2025, ("institution",))[0].balance is None  # no run yet: unknown, not 0
    run = services.start_run("drg", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    rows = analysis.indices(2025, ("institution", "institution_group", "pool"))
    groups = {(r.institution_id, r.drg_code): r for r in rows if r.level == "institution_group"}
    # A G1: 100 × 60 − 8000 = −2000; A G2: 200 × 60 − 12000 = 0; B G2: 200 × 60 − 16000 = −4000
    assert groups[(a.pk, "G1")].balance == D("-2000.00")
    assert groups[(a.pk, "G2")].balance == D("0.00")
    assert groups[(b.pk, "G2")].balance == D("-4000.00")
    insts = by_institution(rows)
    assert (insts[a.pk].point_value, insts[a.pk].balance, insts[b.pk].balance) == (D("60"), D("-2000.00"), D("-4000.00"))
    # Identity: an institution's 结算盈亏 is its run result's Q − A (= S).
    results = {r.unit_code: r for r in run.results.all()}
    assert insts[a.pk].balance == results[a.code].quota - results[a.code].actual
    # The pool: 30000 paid by points − 36000 统筹支付 = −6000 = Σ institutions.
    assert by_institution(rows, "pool")[POOL].balance == D("-6000.00")


def test_cumulative_point_value_ends_at_the_years_point_value(two_hospitals):
    a, b = two_hospitals
    p = factories.person()
    case(a, p, "2025-02-01", "2025-02-05", drg="G1", total="10000.00", personal="2000.00")
    case(b, p, "2025-06-01", "2025-06-05", drg="G2", total="20000.00", personal="4000.00")
    monthly = [r for r in analysis.indices(2025, ("pool_month",)) if r.pool_code == POOL]
    # A 三级 and B 二级 share the pool; points 100 (Feb) and 200 (Jun), no coefficient.
    values = analysis.cumulative_point_values(2025, POOL, monthly, D("24000.00"))
    assert values[1] is None  # no points yet
    # Feb: (24000 × 2/12 + 2000) / 100 = 6000 / 100 = 60
    assert values[2] == D("60.000000")
    # Dec: (24000 + 6000) / 300 = 100, the §6.5 PV of the year
    assert values[12] == D("100.000000")
