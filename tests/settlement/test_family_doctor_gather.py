"""Gathering the family-doctor fee from real rows (SPEC §6.3): signed on 30 June, served, fees, score."""
import datetime
from decimal import Decimal

import pytest

from contracts.models import ServicePackage
from settlement.engine.base import RunContext, get_rule
from settlement.engine.schemes.family_doctor import FamilyDoctorParams, gather_inputs
from settlement.models import Assessment, FamilyDoctorService
from tests import factories

D = Decimal
YEAR = 2026
PARAMS = FamilyDoctorParams()
CTX = RunContext("family_doctor", YEAR)
ON_SIGNING = object()


def signed_up(inst, start=datetime.date(YEAR - 1, 11, 1), end=None, verified_on=ON_SIGNING, package=None, person=None):
    """A person with a contract at `inst`, verified the day it was signed unless told otherwise."""
    person = person or factories.person(county=inst.county)
    verified_on = start if verified_on is ON_SIGNING else verified_on
    factories.contract(person, inst, start, end=end, verified_on=verified_on, package=package)
    return person


def serve(person, inst, day=datetime.date(YEAR, 4, 1), item="慢病随访"):
    return FamilyDoctorService.objects.create(person=person, institution=inst, service_date=day, item=item)


@pytest.fixture
def clinic(county):
    return factories.institution(county=county, level="基层")


def test_the_default_package_is_100_yuan(db):
    # Seeded by migration (PZH 2021: 100 元/人·年); the rest of this file relies on it.
    assert ServicePackage.default().fee == D("100.00")


def test_signed_persons_are_those_in_force_on_30_june(clinic):
    # Counted: ends 30 June; starts 30 June; open-ended. Not counted: ends 29 June; starts 1 July; unverified.
    signed_up(clinic, end=datetime.date(YEAR, 6, 30))
    signed_up(clinic, start=datetime.date(YEAR, 6, 30))
    signed_up(clinic)
    signed_up(clinic, end=datetime.date(YEAR, 6, 29))
    signed_up(clinic, start=datetime.date(YEAR, 7, 1))
    signed_up(clinic, verified_on=None)
    unit = gather_inputs(CTX, PARAMS)[clinic.code]
    assert unit.signed_persons == 3
    assert unit.signed_fees == D("300.00")  # 3 × 100


def test_served_needs_a_record_in_the_year_at_that_institution(clinic, county):
    elsewhere = factories.institution(county=county, level="基层")
    served = signed_up(clinic)
    serve(served, clinic)
    serve(served, clinic, day=datetime.date(YEAR, 5, 1), item="健康评估")  # still one person
    served_after_june = signed_up(clinic, start=datetime.date(YEAR, 9, 1))
    serve(served_after_june, clinic, day=datetime.date(YEAR, 12, 31))
    served_elsewhere = signed_up(clinic)
    serve(served_elsewhere, elsewhere)
    served_last_year = signed_up(clinic)
    serve(served_last_year, clinic, day=datetime.date(YEAR - 1, 12, 31))
    unverified = signed_up(clinic, verified_on=None)
    serve(unverified, clinic)
    ended_last_year = signed_up(clinic, start=datetime.date(YEAR - 2, 1, 1), end=datetime.date(YEAR - 1, 12, 31))
    serve(ended_last_year, clinic)
    never_signed = factories.person(county=county)
    serve(never_signed, clinic)

    unit = gather_inputs(CTX, PARAMS)[clinic.code]
    # Served: `served` and `served_after_june` only → 2 × 100.
    assert unit.served_persons == 2
    assert unit.served_fees == D("200.00")
    # Signed on 30 June: served, served_elsewhere, served_last_year → 3 (unverified is not).
    assert unit.signed_persons == 3
    assert elsewhere.code not in gather_inputs(CTX, PARAMS)  # a service record without contract makes no unit


def test_package_fee_or_the_default(clinic):
    premium = ServicePackage.objects.create(code="GX2026", name="个性化服务包", fee=D("150.00"))
    with_package = signed_up(clinic, package=premium)
    without_package = signed_up(clinic)
    for p in (with_package, without_package):
        serve(p, clinic)
    unit = gather_inputs(CTX, PARAMS)[clinic.code]
    assert unit.signed_fees == D("250.00")  # 150 + 100 (default)
    assert unit.served_fees == D("250.00")


def test_a_person_counts_once_per_institution_at_the_higher_fee(clinic):
    # Two contracts of one person at the clinic in the year (100 元 to March, then 150 元): one served
    # person at 150 元. On 30 June only the second is in force → signed 1 × 150.
    premium = ServicePackage.objects.create(code="GX2026", name="个性化服务包", fee=D("150.00"))
    p = signed_up(clinic, start=datetime.date(YEAR - 1, 1, 1), end=datetime.date(YEAR, 3, 31))
    signed_up(clinic, start=datetime.date(YEAR, 4, 1), package=premium, person=p)
    serve(p, clinic)
    unit = gather_inputs(CTX, PARAMS)[clinic.code]
    assert (unit.served_persons, unit.served_fees) == (1, D("150.00"))
    assert (unit.signed_persons, unit.signed_fees) == (1, D("150.00"))


def test_score_85_through_gather_and_compute(clinic):
    # 4 signed on 30 June (3 × 100 + 1 × 150 = 450.00 = Q); served: 2 at 100 and the 150 one → A = 350.00.
    # Score 85: E = 350.00 × 0.85 = 297.50; unit part = 297.50 − 350.00 = −52.50;
    # S = 450.00 − 350.00 = 100.00; fund part = 100.00 + 52.50 = 152.50.
    # Advance paid in July 0.5 × 450.00 = 225.00 → year-end 297.50 − 225.00 = 72.50.
    premium = ServicePackage.objects.create(code="GX2026", name="个性化服务包", fee=D("150.00"))
    people = [signed_up(clinic) for _ in range(3)] + [signed_up(clinic, package=premium)]
    for p in people[1:]:
        serve(p, clinic)
    Assessment.objects.create(year=YEAR, unit_code=clinic.code, score=D("85"))

    rule = get_rule("family_doctor")
    assert rule.prepayment(CTX, PARAMS, 7) == {clinic.code: D("225.00")}
    unit = gather_inputs(CTX, PARAMS)[clinic.code]
    assert (unit.score, unit.score_assessed) == (D("85"), True)
    outcome = rule.compute(unit, PARAMS, D("225.00"))
    assert (outcome.quota, outcome.actual, outcome.entitled) == (D("450.00"), D("350.00"), D("297.50"))
    assert (outcome.unit_part, outcome.fund_part, outcome.amount) == (D("-52.50"), D("152.50"), D("72.50"))


def test_missing_assessment_uses_100(clinic):
    serve(signed_up(clinic), clinic)
    Assessment.objects.create(year=YEAR - 1, unit_code=clinic.code, score=D("60"))  # another year's
    unit = gather_inputs(CTX, PARAMS)[clinic.code]
    assert (unit.score, unit.score_assessed) == (D("100"), False)
    assert get_rule("family_doctor").compute(unit, PARAMS, D("0")).entitled == D("100.00")


def test_advance_is_paid_in_july_only(clinic):
    signed_up(clinic)
    rule = get_rule("family_doctor")
    assert rule.prepayment(CTX, PARAMS, 7) == {clinic.code: D("50.00")}  # 0.5 × 100
    assert all(rule.prepayment(CTX, PARAMS, month) == {} for month in (1, 6, 8, 12))


def test_region_filter(clinic, other_county):
    far = factories.institution(county=other_county, level="基层")
    signed_up(clinic)
    signed_up(far)
    assert set(gather_inputs(RunContext("family_doctor", YEAR, clinic.county.code), PARAMS)) == {clinic.code}
    assert set(gather_inputs(RunContext("family_doctor", YEAR, factories.CITY_CODE), PARAMS)) == {clinic.code, far.code}


def test_without_default_package_unpackaged_contracts_earn_nothing_and_warn(clinic):
    ServicePackage.objects.filter(is_default=True).update(is_default=False)
    serve(signed_up(clinic), clinic)
    unit = gather_inputs(CTX, PARAMS)[clinic.code]
    assert (unit.signed_persons, unit.signed_fees, unit.served_fees) == (1, D("0"), D("0"))
    assert unit.warnings and "默认服务包" in unit.warnings[0]


def test_gather_runs_the_same_queries_for_one_unit_or_many(county):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def units(n):
        for _ in range(n):
            inst = factories.institution(county=county, level="基层")
            serve(signed_up(inst), inst)
            signed_up(inst)

    units(1)
    with CaptureQueriesContext(connection) as few:
        assert len(gather_inputs(CTX, PARAMS)) == 1
    units(6)
    with CaptureQueriesContext(connection) as many:
        assert len(gather_inputs(CTX, PARAMS)) == 7
    assert len(many) == len(few)
