"""The family-doctor fee end to end through the engine: policy → July advance → year-end run (SPEC §6.3, §7)."""
import datetime
from decimal import Decimal

import pytest

from contracts.models import ServicePackage
from settlement.engine.base import get_rule
from settlement.engine.models import PaymentPolicy, RunStatus, UnitResult
from settlement.engine.params import defaults_of
from settlement.engine.services import run_prepayment, start_run
from settlement.models import ApprovalStatus, Assessment, FamilyDoctorService, Payment, PaymentSource
from tests import factories

D = Decimal
YEAR = 2026


@pytest.fixture
def policy(db):
    return PaymentPolicy.objects.create(
        scheme="family_doctor", year=YEAR, name="攀枝花", status=ApprovalStatus.APPROVED,
        parameters=defaults_of(get_rule("family_doctor").params_class),
    )


def test_advance_then_year_end(policy, county):
    clinic = factories.institution(county=county, level="基层")
    premium = ServicePackage.objects.create(code="GX2026", name="个性化服务包", fee=D("150.00"))
    start = datetime.date(YEAR - 1, 10, 1)
    people = []
    for package in (None, None, None, premium):
        p = factories.person(county=county)
        factories.contract(p, clinic, start, verified_on=start, package=package)
        people.append(p)
    for p in people[1:]:
        FamilyDoctorService.objects.create(
            person=p, institution=clinic, service_date=datetime.date(YEAR, 8, 1), item="慢病随访",
        )
    Assessment.objects.create(year=YEAR, unit_code=clinic.code, score=D("85"))

    # July: 0.5 × (3 × 100 + 150) = 225.00, written as a 月度预拨 payment; running it again changes nothing.
    assert run_prepayment("family_doctor", YEAR, 7)["created"] == 1
    assert run_prepayment("family_doctor", YEAR, 7)["unchanged"] == 1
    assert run_prepayment("family_doctor", YEAR, 6)["created"] == 0
    payment = Payment.objects.get(scheme="family_doctor", year=YEAR, unit_code=clinic.code)
    assert (payment.month, payment.amount, payment.source) == (7, D("225.00"), PaymentSource.PREPAYMENT)

    # Year-end: Q = 450.00; A = 2 × 100 + 150 = 350.00; E = 350.00 × 0.85 = 297.50;
    # unit part −52.50, fund part 100.00 + 52.50 = 152.50; 297.50 − 225.00 = 72.50 to pay.
    run = start_run("family_doctor", YEAR, sync=True)
    result = UnitResult.objects.get(run=run, unit_code=clinic.code)
    assert (result.quota, result.actual, result.surplus) == (D("450.00"), D("350.00"), D("100.00"))
    assert (result.unit_part, result.fund_part, result.entitled) == (D("-52.50"), D("152.50"), D("297.50"))
    assert (result.paid, result.amount) == (D("225.00"), D("72.50"))
    assert result.details["考核得分"] == "85.00"
    assert run.status == RunStatus.COMPUTED, run.failure_reason
