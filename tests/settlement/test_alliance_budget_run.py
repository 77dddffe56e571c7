"""alliance_budget end to end through the engine: approval → monthly prepayments → year-end run."""
import datetime
from decimal import Decimal

import pytest

from alliances.models import BudgetStatus
from settlement.engine.base import get_rule
from settlement.engine.models import PaymentPolicy, RunStatus, UnitResult
from settlement.engine.params import defaults_of
from settlement.engine.services import run_prepayment, start_run
from settlement.models import ApprovalStatus, Assessment, Budget, OutpatientClaim, Payment, Scheme, VisitType
from tests import factories

D = Decimal
YEAR = 2025


@pytest.fixture
def alliance(county):
    PaymentPolicy.objects.create(
        scheme="alliance_budget", year=YEAR, name="开封", status=ApprovalStatus.APPROVED,
        parameters=defaults_of(get_rule("alliance_budget").params_class),
    )
    obj = factories.alliance(county=county)
    obj.budget_status = BudgetStatus.APPROVED
    obj.budget_effective_from = datetime.date(YEAR, 1, 1)  # approved in December of the year before
    obj.save()
    for kind, amount in (("职工", "5000000.00"), ("居民", "7000000.00")):
        Budget.objects.create(year=YEAR, scheme=Scheme.ALLIANCE_BUDGET, unit_code=obj.code, insurance_type=kind,
                              amount=D(amount))
    person = factories.person(county=county)
    OutpatientClaim.objects.create(
        institution=obj.lead_hospital, serial="1", person=person, visit_date=datetime.date(YEAR, 6, 1),
        insurance_type="居民", visit_type=VisitType.GENERAL, total_cost=D("11000000.00"),
        fund_paid=D("11000000.00"), personal_paid=D("0"),
    )
    return obj


def test_prepayments_then_settlement_at_score_60(alliance):
    for month in range(1, 13):
        run_prepayment("alliance_budget", YEAR, month)
    # 12 × 12,000,000.00 / 12 × 95% = 11,400,000.00 prepaid
    assert sum(Payment.objects.filter(unit_code=alliance.code).values_list("amount", flat=True)) == D("11400000.00")
    Assessment.objects.create(year=YEAR, unit_code=alliance.code, score=D("60"))

    run = start_run("alliance_budget", YEAR, sync=True)
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    result = UnitResult.objects.get(run=run, unit_code=alliance.code)
    # E = 12,000,000.00 − 600,000.00 × (1 − 60/90) = 11,800,000.00; year-end = E − 11,400,000.00
    assert result.entitled == D("11800000.00")
    assert result.amount == D("400000.00")
    assert result.unit_part == D("800000.00")  # E − A, A = 11,000,000.00
    assert result.unit_part + result.fund_part == result.quota - result.actual


def test_missing_assessment_fails_the_run_with_the_alliance_named(alliance):
    run = start_run("alliance_budget", YEAR, sync=True)
    assert run.status == RunStatus.FAILED
    assert f"{alliance.name}（{alliance.code}）" in run.failure_reason
    assert "缺少考核得分" in run.failure_reason
    assert not UnitResult.objects.filter(run=run).exists()
