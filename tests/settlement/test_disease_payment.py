"""SPEC §6.7 per-disease payment and the 15% exit-rate cap, with figures worked by hand."""
from decimal import Decimal

import pytest

from alliances.models import InstitutionLevel
from settlement.engine.base import RunContext, get_rule
from settlement.engine.schemes.disease import (
    DiseaseParams, check_exit_cap, disease_exit_counts, gather_disease, require_within_cap_or_override,
)
from tests import factories
from tests.settlement.inpatient_builders import D, case, disease_standard

CTX = RunContext("disease", 2025)
PARAMS = DiseaseParams()


@pytest.fixture
def hospital(county):
    inst = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    disease_standard("K35.8", InstitutionLevel.SECONDARY, "6000.00", operation="47.09")
    disease_standard("K35.8", InstitutionLevel.SECONDARY, "5000.00")  # any other operation
    disease_standard("K35.8", InstitutionLevel.SECONDARY, "1.00", operation="47.09", year=2024)
    return inst


def test_entitlement_is_standard_minus_personal_by_hand(hospital):
    person = factories.person()
    case(hospital, person, "2025-03-01", "2025-03-05", diagnosis="K35.8", operation="47.09",
         total="6500.00", personal="1200.00")  # exact operation: 6,000 − 1,200 = 4,800
    case(hospital, person, "2025-04-01", "2025-04-05", diagnosis="K35.8", operation="47.01",
         total="4000.00", personal="800.00")  # any-operation standard: 5,000 − 800 = 4,200
    case(hospital, person, "2025-05-01", "2025-05-05", diagnosis="K35.8",
         total="5200.00", personal="1000.00")  # no operation: 5,000 − 1,000 = 4,000
    case(hospital, person, "2025-06-01", "2025-06-05", diagnosis="J18.0", drg="G01")  # DRG case
    rule = get_rule("disease")
    outcome = rule.compute(rule.gather(CTX, PARAMS)[hospital.code], PARAMS, D("10000.00"))
    assert outcome.entitled == D("13000.00")  # 4,800 + 4,200 + 4,000
    assert outcome.actual == D("12700.00")  # 5,300 + 3,200 + 4,200
    assert outcome.quota == outcome.entitled
    assert (outcome.surplus, outcome.unit_part, outcome.fund_part) == (D("300.00"), D("300.00"), D("0.00"))
    assert outcome.amount == D("3000.00")
    assert outcome.details["cases"] == 3


def test_exited_cases_are_paid_by_item(hospital):
    person = factories.person()
    case(hospital, person, "2025-03-01", "2025-03-05", diagnosis="K35.8", operation="47.09",
         total="6500.00", personal="1200.00")  # 4,800 by the standard
    exited = case(hospital, person, "2025-04-01", "2025-04-25", diagnosis="K35.8", operation="47.09",
                  total="30000.00", personal="5000.00")  # exits: its 统筹支付 25,000 is paid
    inputs = gather_disease(CTX, PARAMS, {exited.pk})[hospital.code]
    outcome = get_rule("disease").compute(inputs, PARAMS, D("0.00"))
    assert outcome.entitled == D("29800.00")  # 4,800 + 25,000
    assert outcome.actual == D("30300.00")  # 5,300 + 25,000
    assert outcome.surplus == D("-500.00")  # the exited case adds nothing to S
    assert outcome.details["exited_cases"] == 1
    assert any("退出率" in w for w in outcome.warnings)  # 1 of 2 = 50% > 15%


def test_personal_share_over_the_standard_is_warned(hospital):
    case(hospital, factories.person(), "2025-03-01", "2025-03-05", diagnosis="K35.8",
         total="7000.00", personal="5600.00")  # 5,000 − 5,600 = −600
    outcome = get_rule("disease").compute(gather_disease(CTX, PARAMS)[hospital.code], PARAMS, D("0.00"))
    assert outcome.entitled == D("-600.00")
    assert any("个人负担超过支付标准" in w for w in outcome.warnings)


def test_exit_counts_for_the_cap(hospital):
    person = factories.person()
    cases = [case(hospital, person, "2025-03-01", "2025-03-05", diagnosis="K35.8") for _ in range(3)]
    case(hospital, person, "2024-03-01", "2024-03-05", diagnosis="K35.8")  # 2024 — no 2024 '' standard: DRG
    assert disease_exit_counts(2025, hospital.pk, "K35.8", {cases[0].pk}) == (3, 1)


@pytest.mark.parametrize(("approved", "within"), [(2, True), (3, False)])
def test_exit_cap_at_the_boundary(approved, within):
    check = check_exit_cap(20, approved)
    # 20 cases: the 3rd exit makes 3 / 20 = 15% (allowed, exactly at the cap); the 4th makes 20%.
    assert check.within_cap is within
    assert check.rate_after == Decimal(approved + 1) / 20


def test_exit_over_the_cap_needs_a_reason():
    check = check_exit_cap(20, 3)
    with pytest.raises(ValueError, match="20.00%"):
        require_within_cap_or_override(check)
    with pytest.raises(ValueError):
        require_within_cap_or_override(check, "   ")
    require_within_cap_or_override(check, "合并严重并发症，经县区医保局协商同意")
    require_within_cap_or_override(check_exit_cap(20, 2))  # within: no reason needed


def test_exit_cap_is_a_parameter():
    assert check_exit_cap(10, 1, cap=D("0.20")).within_cap  # 2 / 10 = 20%
    assert not check_exit_cap(10, 2, cap=D("0.20")).within_cap  # 3 / 10 = 30%


def test_engine_runs_the_disease_scheme_end_to_end(hospital):
    from settlement.engine import services
    from settlement.engine.models import PaymentPolicy, RunStatus
    from settlement.models import ApprovalStatus

    PaymentPolicy.objects.create(scheme="disease", year=2025, name="按病种付费", status=ApprovalStatus.APPROVED)
    case(hospital, factories.person(), "2025-03-01", "2025-03-05", diagnosis="K35.8", operation="47.09",
         total="6500.00", personal="1200.00")
    run = services.start_run("disease", 2025, sync=True)
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    result = run.results.get(unit_code=hospital.code)
    assert (result.entitled, result.actual) == (D("4800.00"), D("5300.00"))  # 6,000 − 1,200; 6,500 − 1,200
