"""Each audit rule of SPEC §9 on hand-made rows: a row that fires, the nearest one that must not,
and the 涉及金额 worked out by hand."""
import datetime
from decimal import Decimal

import pytest
from django.db import connection

from alliances.models import InstitutionLevel
from settlement.audit.models import Finding
from settlement.audit.services import run_audit
from settlement.models import FamilyDoctorService
from tests import factories
from tests.settlement.audit_builders import audit, claim
from tests.settlement.inpatient_builders import case, group

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def hospital(county):
    return factories.institution(county=county, level=InstitutionLevel.SECONDARY)


@pytest.fixture
def patient(county):
    return factories.person(county=county)


# --- DUP01 -------------------------------------------------------------------------------------


def test_duplicate_claim_fires_on_the_later_serial_only(hospital, patient):
    first = claim(hospital, patient, "2025-03-01", total="120.00", personal="20.00", serial="MZ001")
    second = claim(hospital, patient, "2025-03-01", total="120.00", personal="20.00", serial="MZ002")
    (finding,) = audit("DUP01")
    assert finding.claim == second
    assert finding.amount == D("100.00")  # its 统筹支付: 120.00 − 20.00
    assert finding.evidence_data["earlier_claim_id"] == first.pk
    assert "MZ001" in finding.evidence and finding.severity == "违规"


@pytest.mark.parametrize("change", ["total", "date", "type", "institution"])
def test_duplicate_claim_needs_every_field_equal(hospital, patient, county, change):
    claim(hospital, patient, "2025-03-01", total="120.00")
    other = factories.institution(county=county) if change == "institution" else hospital
    claim(other, patient, "2025-03-02" if change == "date" else "2025-03-01",
          total="120.01" if change == "total" else "120.00",
          visit_type="慢病门诊" if change == "type" else "普通门诊")
    assert audit("DUP01") == []


# --- SPL01 -------------------------------------------------------------------------------------


def test_split_admission_at_15_days_fires_and_16_does_not(hospital, patient, county):
    case(hospital, patient, "2025-02-01", "2025-02-10", diagnosis="J18.901")
    later = case(hospital, patient, "2025-02-25", "2025-03-01", diagnosis="J18.000", total="5000.00", personal="1500.00")
    other = factories.person(county=county)
    case(hospital, other, "2025-02-01", "2025-02-10", diagnosis="J18.901")
    case(hospital, other, "2025-02-26", "2025-03-01", diagnosis="J18.000")
    (finding,) = audit("SPL01")
    assert finding.case == later  # 25 Feb − 10 Feb = 15 days ≤ 15; the other person's 16 days does not fire
    assert finding.amount == D("3500.00")  # the later stay's 统筹支付: 5000.00 − 1500.00
    assert finding.evidence_data["gap_days"] == 15


def test_split_admission_by_same_drg_group_with_different_diagnoses(hospital, patient):
    case(hospital, patient, "2025-02-01", "2025-02-10", diagnosis="I21.0", drg="FM19")
    later = case(hospital, patient, "2025-02-12", "2025-02-20", diagnosis="I25.1", drg="FM19")
    assert [f.case for f in audit("SPL01")] == [later]


@pytest.mark.parametrize("exclusion", ["incomplete_first", "incomplete_later", "transferred", "chemo", "radio",
                                       "other_diagnosis", "other_institution"])
def test_split_admission_exclusions(hospital, patient, county, exclusion):
    first = case(hospital, patient, "2025-02-01", "2025-02-10", diagnosis="Z51.1" if exclusion == "chemo" else "J18.9",
                 incomplete=exclusion == "incomplete_first")
    if exclusion == "transferred":
        first.transferred = True
        first.save()
    diagnosis = {"chemo": "Z51.100", "radio": "Z51.0", "other_diagnosis": "K35.2"}.get(exclusion, "J18.9")
    if exclusion == "radio":
        first.principal_diagnosis = "Z51.0"
        first.save()
    where = factories.institution(county=county) if exclusion == "other_institution" else hospital
    case(where, patient, "2025-02-12", "2025-02-20", diagnosis=diagnosis, incomplete=exclusion == "incomplete_later")
    assert audit("SPL01") == []


# --- LOW01 / HIC01 ------------------------------------------------------------------------------


def test_low_standard_admission(hospital, patient):
    group("GB29", "1.0", average_cost="10000.00")
    low = case(hospital, patient, "2025-05-01", "2025-05-03", drg="GB29", total="2999.99", personal="999.99")
    case(hospital, patient, "2025-06-01", "2025-06-03", drg="GB29", total="3000.00")  # not < 30% of 10000
    case(hospital, patient, "2025-07-01", "2025-07-04", drg="GB29", total="1000.00")  # 3 days > 2
    case(hospital, patient, "2025-08-01", "2025-08-02", drg="GB29", total="1000.00", incomplete=True)
    (finding,) = audit("LOW01")
    assert finding.case == low
    assert finding.amount == D("2000.00")  # its 统筹支付: 2999.99 − 999.99


def test_low_standard_skips_transferred(hospital, patient):
    group("GB29", "1.0", average_cost="10000.00")
    stay = case(hospital, patient, "2025-05-01", "2025-05-01", drg="GB29", total="500.00")
    stay.transferred = True
    stay.save()
    assert audit("LOW01") == []


def test_high_multiple_is_3x_at_tertiary_and_2x_elsewhere(county, patient):
    group("FR11", "2.0", average_cost="10000.00")
    tertiary = factories.institution(county=county, level=InstitutionLevel.TERTIARY)
    secondary = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    case(tertiary, patient, "2025-03-01", "2025-03-20", drg="FR11", total="30000.00")  # = 3×: not above
    high_3 = case(tertiary, patient, "2025-04-01", "2025-04-20", drg="FR11", total="30000.01")
    case(secondary, patient, "2025-05-01", "2025-05-20", drg="FR11", total="20000.00")  # = 2×: not above
    high_2 = case(secondary, patient, "2025-06-01", "2025-06-20", drg="FR11", total="25000.00")
    findings = {f.case: f for f in audit("HIC01")}
    assert set(findings) == {high_3, high_2}
    assert findings[high_3].amount == D("20000.01")  # 30000.01 − 10000.00
    assert findings[high_2].amount == D("15000.00")  # 25000.00 − 10000.00
    assert findings[high_2].severity == "提示"


# --- UPC01 -------------------------------------------------------------------------------------


def _cases(inst, patient, code, n):
    for k in range(n):
        day = datetime.date(2025, 1, 1) + datetime.timedelta(days=k * 3)
        case(inst, patient, day.isoformat(), (day + datetime.timedelta(days=1)).isoformat(), drg=code,
             diagnosis="R00.0")


@pytest.mark.parametrize("cases, fires", [(19, False), (20, True)])
def test_upcoding_needs_20_cases(county, patient, cases, fires):
    suspect = factories.institution(county=county)
    peer = factories.institution(county=county)
    # Suspect: all its ES1 cases in the most severe group (100%); the peer: 80 cases, none severe.
    _cases(suspect, patient, "ES11", cases)
    _cases(peer, patient, "ES13", 80)
    findings = audit("UPC01")
    if not fires:
        assert findings == []
        return
    (finding,) = findings
    # City share = 20 / 100 = 20%; the suspect's 100% is 80 points above (≥ 20).
    assert finding.institution == suspect and finding.amount == D("0.00")
    assert finding.evidence_data == {"adrg": "ES1", "cases": 20, "severe_cases": 20, "city_share": "0.200000"}


def test_upcoding_below_20_points_does_not_fire(county, patient):
    suspect = factories.institution(county=county)
    peer = factories.institution(county=county)
    # Suspect 10 of 20 severe (50%); peer 6 of 20 (30%): city 16/40 = 40%, suspect only 10 points above.
    _cases(suspect, patient, "ES11", 10)
    _cases(suspect, patient, "ES13", 10)
    _cases(peer, patient, "ES11", 6)
    _cases(peer, patient, "ES13", 14)
    assert audit("UPC01") == []


# --- FRQ01 / FRQ02 ------------------------------------------------------------------------------


def test_frequent_visits_11_in_a_month_fires_10_does_not(hospital, patient, county):
    for k in range(1, 12):
        claim(hospital, patient, f"2025-04-{k:02d}", total="50.00", personal="10.00" if k < 11 else "5.00")
    other = factories.person(county=county)
    for k in range(1, 11):
        claim(hospital, other, f"2025-04-{k:02d}")
    (finding,) = audit("FRQ01")
    assert finding.person == patient and finding.institution == hospital
    assert finding.amount == D("45.00")  # only the 11th visit is beyond 10: 50.00 − 5.00
    assert len(finding.evidence_data["claim_ids"]) == 11 and len(finding.evidence_data["beyond_claim_ids"]) == 1


def test_frequent_visits_count_per_month(hospital, patient):
    for k in range(1, 7):
        claim(hospital, patient, f"2025-04-{20 + k:02d}")
        claim(hospital, patient, f"2025-05-{k:02d}")
    assert audit("FRQ01") == []  # 6 + 6 across two months


def test_same_day_at_three_institutions_fires_two_does_not(county, patient):
    a, b, c = (factories.institution(county=county) for _ in range(3))
    claim(a, patient, "2025-06-01", total="100.00", personal="40.00")
    claim(b, patient, "2025-06-01", total="80.00", personal="30.00")
    claim(c, patient, "2025-06-01", total="60.00", personal="20.00")
    claim(a, patient, "2025-06-02")
    claim(b, patient, "2025-06-02")
    (finding,) = audit("FRQ02")
    assert finding.person == patient and finding.institution is None and finding.region == county
    assert finding.amount == D("150.00")  # 60.00 + 50.00 + 40.00


# --- SRV01 -------------------------------------------------------------------------------------


def test_unserved_contract_six_months_fires(hospital, county):
    served, unserved, short, unverified = (factories.person(county=county) for _ in range(4))
    factories.contract(served, hospital, datetime.date(2024, 1, 1), verified_on=datetime.date(2024, 1, 5))
    FamilyDoctorService.objects.create(person=served, institution=hospital, service_date=datetime.date(2025, 9, 1),
                                       item="随访")
    target = factories.contract(unserved, hospital, datetime.date(2025, 7, 1), verified_on=datetime.date(2025, 7, 3))
    # 2 Jul – 31 Dec is one day short of six months.
    factories.contract(short, hospital, datetime.date(2025, 7, 2), verified_on=datetime.date(2025, 7, 3))
    factories.contract(unverified, hospital, datetime.date(2025, 1, 1))
    (finding,) = audit("SRV01")
    assert finding.contract == target and finding.amount == D("0.00")


def test_unserved_contract_counts_only_service_in_force_and_at_its_institution(hospital, county):
    person = factories.person(county=county)
    factories.contract(person, hospital, datetime.date(2025, 1, 1), end=datetime.date(2025, 6, 30),
                       verified_on=datetime.date(2025, 1, 2))
    # Served, but after the contract ended and elsewhere: the contract still counts as never served.
    FamilyDoctorService.objects.create(person=person, institution=hospital, service_date=datetime.date(2025, 7, 1),
                                       item="随访")
    FamilyDoctorService.objects.create(person=person, institution=factories.institution(county=county),
                                       service_date=datetime.date(2025, 3, 1), item="随访")
    assert len(audit("SRV01")) == 1


# --- LOW01 and 离院方式 ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode, fires", [(None, True), ("1", True), ("4", True), ("9", True), ("5", False),
                                         ("2", False)])
def test_low_standard_admission_skips_death_and_transfer_by_discharge_mode(hospital, patient, mode, fires):
    group("GB29", "1.0", average_cost="10000.00")
    # 2 days, 2,999.99 < 30% × 10,000.00: low standard unless the patient died (5) or was transferred (2).
    stay = case(hospital, patient, "2025-05-01", "2025-05-03", drg="GB29", total="2999.99", personal="999.99")
    stay.discharge_mode = mode
    stay.save()
    assert [f.case for f in audit("LOW01")] == ([stay] if fires else [])


def test_split_admission_skips_a_stay_transferred_by_discharge_mode(hospital, patient):
    first = case(hospital, patient, "2025-02-01", "2025-02-10", diagnosis="J18.9")
    case(hospital, patient, "2025-02-20", "2025-02-25", diagnosis="J18.9")
    assert len(audit("SPL01")) == 1
    first.discharge_mode = "2"
    first.save()
    assert [f.status for f in audit("SPL01")] == ["已失效"]  # no longer produced


# --- the prefilters of DUP01, FRQ01 and FRQ02 at their boundaries ---------------------------------


def test_duplicate_claim_counts_each_repeat_of_a_key_and_ignores_a_busy_day_without_one(hospital, patient, county):
    first = claim(hospital, patient, "2025-03-01", total="120.00", personal="20.00", serial="MZ101")
    claim(hospital, patient, "2025-03-01", total="120.00", personal="30.00", serial="MZ102")
    claim(hospital, patient, "2025-03-01", total="120.00", personal="40.00", serial="MZ103")
    # Another person-day with two claims that differ in 机构: a candidate of the prefilter, not a repeat.
    claim(hospital, patient, "2025-03-02", total="80.00")
    claim(factories.institution(county=county), patient, "2025-03-02", total="80.00")
    findings = audit("DUP01")
    assert [f.claim.serial for f in findings] == ["MZ102", "MZ103"]
    assert [f.amount for f in findings] == [D("90.00"), D("80.00")]  # 120 − 30, 120 − 40
    assert {f.evidence_data["earlier_claim_id"] for f in findings} == {first.pk}


def test_frequent_visits_eleven_from_the_first_to_the_last_day_of_a_month_fire(hospital, patient):
    days = [1, 3, 6, 9, 12, 15, 18, 21, 24, 27, 31]  # 11 visits spanning 30 days, all in May
    for day in days:
        claim(hospital, patient, f"2025-05-{day:02d}", total="50.00", personal="20.00")
    (finding,) = audit("FRQ01")
    assert finding.amount == D("30.00") and finding.subject.endswith(":5")


def test_frequent_visits_eleven_within_thirty_days_across_two_months_do_not_fire(hospital, patient):
    for day in range(25, 31):
        claim(hospital, patient, f"2025-04-{day:02d}")
    for day in range(1, 6):
        claim(hospital, patient, f"2025-05-{day:02d}")
    assert audit("FRQ01") == []  # 6 in April + 5 in May, within 11 days


def test_frequent_visits_count_per_institution_not_per_person(hospital, patient, county):
    other = factories.institution(county=county)
    for day in range(1, 11):
        claim(hospital, patient, f"2025-06-{day:02d}")
        claim(other, patient, f"2025-06-{day:02d}")
    assert audit("FRQ01") == []  # 20 visits in June, 10 at each institution


def test_frequent_visits_two_institutions_over_the_limit_in_one_month(hospital, patient, county):
    other = factories.institution(county=county)
    for day in range(1, 12):
        claim(hospital, patient, f"2025-07-{day:02d}", total="40.00", personal="10.00")
    for day in range(1, 13):
        claim(other, patient, f"2025-07-{day:02d}", total="60.00", personal="20.00")
    findings = {f.institution: f for f in audit("FRQ01")}
    assert findings[hospital].amount == D("30.00")  # the 11th visit: 40 − 10
    assert findings[other].amount == D("80.00")  # the 11th and 12th: 2 × (60 − 20)
    assert len(findings[other].evidence_data["beyond_claim_ids"]) == 2


def test_same_day_three_visits_at_two_institutions_do_not_fire(county, patient):
    a, b = (factories.institution(county=county) for _ in range(2))
    claim(a, patient, "2025-06-01")
    claim(a, patient, "2025-06-01", total="90.00")
    claim(b, patient, "2025-06-01")
    assert audit("FRQ02") == []


# --- one person-day pass shared by DUP01, FRQ01 and FRQ02 in a run --------------------------------


def test_frequent_visits_eleven_on_six_days_fire(hospital, patient):
    # Two visits a day on 1–5 August and one on the 6th: 11 visits, 6 days. The pass looks back 10
    # visits, not 10 days; the totals differ, so none of them is a repeat (DUP01).
    for day in range(1, 7):
        for k in range(1 if day == 6 else 2):
            claim(hospital, patient, f"2025-08-{day:02d}", total=f"{50 + k}.00", personal="20.00")
    (finding,) = audit("FRQ01")
    assert finding.amount == D("30.00")  # the 11th visit (6 August): 50.00 − 20.00
    assert audit("DUP01") == []


def test_one_run_of_the_claim_rules_shares_its_pass_and_drops_it(hospital, patient, county):
    # DUP01: a repeat on 1 March. FRQ01: 11 visits in April. FRQ02: three institutions on 1 June.
    claim(hospital, patient, "2025-03-01", total="120.00", personal="20.00")
    repeat = claim(hospital, patient, "2025-03-01", total="120.00", personal="25.00")
    for day in range(1, 12):
        claim(hospital, patient, f"2025-04-{day:02d}", total="50.00", personal="15.00")
    other, third = (factories.institution(county=county) for _ in range(2))
    for inst, personal in ((hospital, "10.00"), (other, "20.00"), (third, "30.00")):
        claim(inst, patient, "2025-06-01", total="70.00", personal=personal)
    outcomes = {o.code: o.produced for o in run_audit(2025, ["DUP01", "FRQ01", "FRQ02"])}
    assert outcomes == {"DUP01": 1, "FRQ01": 1, "FRQ02": 1}
    found = {f.rule: f for f in Finding.objects.filter(year=2025)}
    assert found["DUP01"].claim == repeat and found["DUP01"].amount == D("95.00")  # 120 − 25
    assert found["FRQ01"].amount == D("35.00")  # the 11th April visit: 50 − 15
    assert found["FRQ02"].amount == D("150.00")  # 60 + 50 + 40
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.audit_person_days')")
        assert cursor.fetchone() == (None,)
