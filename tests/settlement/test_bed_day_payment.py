"""SPEC §6.6 bed-day payment and its monitoring report, with figures worked by hand."""

import pytest

from alliances.models import InstitutionLevel
from settlement.engine.base import RunContext, get_rule
from settlement.engine.schemes.bed_day import BedDayParams, bed_day_monitoring, gather_bed_day
from settlement.engine.schemes.inpatient_common import SchemeInputError
from tests import factories
from tests.settlement.inpatient_builders import D, bed_day_quota, case, payment

CTX = RunContext("bed_day", 2025)
PARAMS = BedDayParams()


@pytest.fixture
def hospital(county):
    inst = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    bed_day_quota(InstitutionLevel.SECONDARY, "精神", "200.00")
    bed_day_quota(InstitutionLevel.SECONDARY, "康复", "300.00")
    bed_day_quota(InstitutionLevel.TERTIARY, "精神", "999.00")  # another level: not this hospital's
    bed_day_quota(InstitutionLevel.SECONDARY, "精神", "1.00", year=2024)  # another year
    person = factories.person()
    case(inst, person, "2025-01-01", "2025-01-31", bed_day="精神", total="7000.00", personal="1000.00")  # 30 days
    # 2025-02-01 → 2025-05-15: 27 + 31 + 30 + 15 = 103 days
    case(inst, person, "2025-02-01", "2025-05-15", bed_day="精神", total="20600.00", personal="2600.00")
    case(inst, person, "2025-06-01", "2025-06-01", bed_day="康复", total="350.00", personal="50.00")  # 1 day
    case(inst, person, "2024-11-01", "2024-12-31", bed_day="精神")  # discharged in 2024
    case(inst, person, "2025-07-01", "2025-07-09", drg="G01")  # not a bed-day case
    return inst


def test_entitlement_is_days_times_quota(hospital):
    rule = get_rule("bed_day")
    payment(hospital.code, "20000.00", scheme="bed_day")
    outcome = rule.compute(rule.gather(CTX, PARAMS)[hospital.code], PARAMS, D("20000.00"))
    assert outcome.entitled == D("26900.00")  # (30 + 103) × 200 + 1 × 300 = 26,600 + 300
    assert outcome.quota == outcome.entitled
    assert outcome.actual == D("24300.00")  # 6,000 + 18,000 + 300
    assert outcome.surplus == D("2600.00")
    assert (outcome.unit_part, outcome.fund_part) == (D("2600.00"), D("0.00"))
    assert outcome.amount == D("6900.00")  # 26,900 − 20,000
    assert outcome.details["by_category"]["精神"]["days"] == 133


def test_missing_quota_stops_the_run(hospital):
    case(hospital, factories.person(), "2025-03-01", "2025-03-11", bed_day="安宁疗护")
    with pytest.raises(SchemeInputError, match="二级·安宁疗护"):
        gather_bed_day(CTX, PARAMS)


def test_county_run_sees_only_its_county(hospital, other_county):
    elsewhere = factories.institution(county=other_county, level=InstitutionLevel.SECONDARY)
    case(elsewhere, factories.person(), "2025-03-01", "2025-03-11", bed_day="精神")
    assert set(gather_bed_day(RunContext("bed_day", 2025, "330503"), PARAMS)) == {elsewhere.code}
    assert set(gather_bed_day(RunContext("bed_day", 2025, "330500"), PARAMS)) == {hospital.code, elsewhere.code}


def test_monitoring_by_hand(hospital):
    rows = {row.category: row for row in bed_day_monitoring(CTX, PARAMS)}
    psych = rows["精神"]
    assert (psych.cases, psych.days) == (2, 133)
    assert psych.average_length_of_stay == D("66.50")  # 133 / 2
    assert psych.average_daily_cost == D("207.52")  # 27,600 / 133 = 207.5188…
    assert psych.average_daily_fund_paid == D("180.45")  # 24,000 / 133 = 180.4511…
    assert psych.quota_per_day == D("200.00")
    assert psych.daily_cost_over_quota == D("7.52")
    assert (psych.cap_days, psych.over_cap_cases) == (90, 1)  # the 103-day stay
    rehab = rows["康复"]
    assert (rehab.average_length_of_stay, rehab.average_daily_cost, rehab.cap_days, rehab.over_cap_cases) == (
        D("1.00"), D("350.00"), 60, 0,
    )


def test_length_caps_are_parameters_and_strict(hospital):
    rows = {row.category: row for row in bed_day_monitoring(CTX, BedDayParams(psychiatric_cap_days=30))}
    assert rows["精神"].over_cap_cases == 1  # 30 days is not over a 30-day cap; 103 is


def test_engine_runs_the_bed_day_scheme_end_to_end(hospital):
    from settlement.engine import services
    from settlement.engine.models import PaymentPolicy, RunStatus
    from settlement.models import ApprovalStatus

    PaymentPolicy.objects.create(scheme="bed_day", year=2025, name="按床日付费", status=ApprovalStatus.APPROVED)
    payment(hospital.code, "20000.00", scheme="bed_day")
    run = services.start_run("bed_day", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    result = run.results.get(unit_code=hospital.code)
    assert (result.entitled, result.amount) == (D("26900.00"), D("6900.00"))  # as worked above
