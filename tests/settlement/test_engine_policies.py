"""Policy presets and the 测算 of capitation standards."""
import datetime
from decimal import Decimal

import pytest

from contracts.models import DiseaseRegistration
from settlement.engine.models import PaymentPolicy
from settlement.engine.presets import PresetError, load_preset
from settlement.engine.services import SettlementError, resolve_policy
from settlement.engine.standards import approve_capitation_standards, propose_capitation_standards
from settlement.models import ApprovalStatus, CapitationStandard
from tests import factories
from tests.settlement.engine_data import claim, d, standard

pytestmark = pytest.mark.django_db
D = Decimal


def test_huzhou_preset_loads_a_draft_then_approved_is_kept():
    load_preset("湖州", 2025)
    row = PaymentPolicy.objects.get(scheme="capitation", year=2025, region=None)
    assert row.status == ApprovalStatus.DRAFT
    params = row.typed_parameters()
    assert (params.retention, params.overspend_share, params.max_bonus_up, params.max_bonus_down) == (
        D("0.85"), D("0.85"), D("5"), D("5"))
    assert params.visit_types == ("普通门诊", "慢病门诊") and params.disease_add_mode == "add_all"
    with pytest.raises(SettlementError, match="尚未审批"):
        resolve_policy("capitation", 2025)
    load_preset("湖州", 2025, approve=True)
    assert PaymentPolicy.objects.count() == 1
    row.refresh_from_db()
    assert row.status == ApprovalStatus.APPROVED
    PaymentPolicy.objects.filter(pk=row.pk).update(parameters={**row.parameters, "retention": "0.80"})
    report = load_preset("湖州", 2025)
    assert "已审批，未覆盖" in report[0]
    assert PaymentPolicy.objects.get(pk=row.pk).parameters["retention"] == "0.80"


def test_panzhihua_and_kaifeng_presets_fill_the_other_schemes():
    load_preset("攀枝花", 2025)
    load_preset("开封", 2025)
    special = PaymentPolicy.objects.get(scheme="special_outpatient").typed_parameters()
    assert (special.surplus_retention, special.overspend_tier, special.fund_share_in_tier) == (D("0.80"), D("0.10"), D("0.40"))
    assert (special.prepayment_ratio, special.risk_a, special.risk_b) == (D("0.95"), D("0.2"), D("0.3"))
    assert PaymentPolicy.objects.get(scheme="family_doctor").typed_parameters().advance_ratio == D("0.50")
    budget = PaymentPolicy.objects.get(scheme="alliance_budget").typed_parameters()
    assert (budget.deposit_ratio, budget.full_return_score, budget.prepayment_ratio) == (D("0.05"), D("90"), D("0.95"))
    assert (budget.surplus_retention, budget.overspend_covered) == (D("1.00"), D("0.00"))
    with pytest.raises(PresetError, match="没有“北京”的政策预设"):
        load_preset("北京", 2025)


def test_propose_standards_from_last_year_then_approve():
    county = factories.region()
    inst = factories.institution(county=county)
    factories.alliance(lead=inst)
    young = datetime.date(1970, 5, 17)
    p1, p2 = factories.person(county, young), factories.person(county, young)
    factories.contract(p1, inst, d("2023-01-01"), verified_on=d("2023-01-02"))   # 12 months of 2024
    factories.contract(p2, inst, d("2024-07-01"), verified_on=d("2024-07-02"))   # July–December: 6
    chronic = factories.disease(name="高血压")
    DiseaseRegistration.objects.create(person=p1, disease=chronic, filed_on=d("2023-05-01"))  # 12 months
    claim(p1, inst, d("2024-02-02"), "300.00")
    claim(p2, inst, d("2024-08-08"), "150.00")
    claim(p2, inst, d("2024-03-03"), "999.00")  # before p2's contract counted: not history of a head
    claim(p1, inst, d("2024-04-04"), "240.00", visit_type="慢病门诊", disease=chronic)
    claim(p1, inst, d("2024-04-05"), "77.00", visit_type="慢病门诊", disease=factories.disease())  # not registered
    standard(2025, "居民", "60周岁以上", "2222.00")  # approved rows are kept as they are

    summary = propose_capitation_standards(2025, base_years=1)
    assert summary == {"created": 2, "updated": 0, "kept_approved": 0}
    base = CapitationStandard.objects.get(year=2025, insurance_type="居民", age_band="60周岁及以下", disease=None)
    # 普通门诊: (300.00 + 150.00) ÷ (18 person-months ÷ 12) = 450.00 ÷ 1.5 = 300.00 per person-year
    assert (base.amount, base.status) == (D("300.00"), ApprovalStatus.DRAFT)
    per_disease = CapitationStandard.objects.get(year=2025, disease=chronic)
    # 高血压: 240.00 ÷ (12 ÷ 12) = 240.00
    assert per_disease.amount == D("240.00")

    # proposing again updates drafts, never duplicates
    assert propose_capitation_standards(2025, base_years=1) == {"created": 0, "updated": 2, "kept_approved": 0}
    assert approve_capitation_standards(CapitationStandard.objects.filter(year=2025)) == 2
    base.refresh_from_db()
    assert base.status == ApprovalStatus.APPROVED and base.approved_at is not None
    assert propose_capitation_standards(2025, base_years=1)["kept_approved"] == 2


def test_propose_without_history_is_refused():
    with pytest.raises(SettlementError, match="没有可用于测算的签约人头数据"):
        propose_capitation_standards(2025)
