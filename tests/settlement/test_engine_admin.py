"""Admin pages of the engine: runs with progress, unit results in Chinese, drill-down, statements, scope."""
from decimal import Decimal

import pytest
from django.urls import reverse

from settlement.engine.models import PaymentPolicy, RunStatus, SettlementRun, UnitResult
from settlement.engine.services import start_run
from settlement.models import ApprovalStatus, CapitationStandard, OutpatientClaim
from tests.settlement.engine_data import policy
from tests.settlement.test_engine_runs import build_two_alliances

pytestmark = pytest.mark.django_db


@pytest.fixture
def settled():
    county, a, b = build_two_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    return county, a, b, run


def login(client, user):
    client.force_login(user)
    return client


def test_run_list_detail_and_unit_result_for_the_city(client, make_user, settled):
    county, a, b, run = settled
    login(client, make_user("city"))
    page = client.get(reverse("admin:settlement_settlementrun_changelist"))
    assert page.status_code == 200
    assert "已计算" in page.content.decode() and "<progress" in page.content.decode()
    detail = client.get(reverse("admin:settlement_settlementrun_change", args=[run.pk])).content.decode()
    assert "YGT-A" in detail and "YGT-B" in detail

    result = UnitResult.objects.get(run=run, unit_code="YGT-A")
    page = client.get(reverse("admin:settlement_unitresult_change", args=[result.pk])).content.decode()
    for label in ("签约人头数（人）", "医共体内就医统筹支付（元）", "医共体外就医统筹支付（元）", "实际结余留用比例", "险种", "年龄段"):
        assert label in page
    assert f"settlement_unit={result.pk}" in page


def test_drill_down_lists_exactly_the_claims_behind_a(client, make_user, settled):
    county, a, b, run = settled
    login(client, make_user("city"))
    result = UnitResult.objects.get(run=run, unit_code="YGT-A")
    page = client.get(reverse("admin:settlement_outpatientclaim_changelist") + f"?settlement_unit={result.pk}")
    assert page.status_code == 200
    shown = {claim.serial for claim in page.context["cl"].result_list}
    # A's 800.00 = p1's 500.00 at A's hospital + p2's 300.00 at B's hospital; p3's claim is B's
    expected = set(OutpatientClaim.objects.filter(fund_paid__in=[Decimal("500.00"), Decimal("300.00")]).values_list("serial", flat=True))
    assert shown == expected and len(shown) == 2


def test_a_lead_hospital_drills_down_to_every_claim_of_its_a_read_only(client, make_user, settled):
    """Issue 18 finding 3: A includes p2's 300.00 at B's hospital; the lead hospital must see it there."""
    county, a, b, run = settled
    login(client, make_user("hospital", a.lead_hospital.code))
    result = UnitResult.objects.get(run=run, unit_code="YGT-A")
    drill = client.get(reverse("admin:settlement_outpatientclaim_changelist") + f"?settlement_unit={result.pk}")
    shown = list(drill.context["cl"].result_list)
    # Count and sum equal the unit's A: 500.00 + 300.00 = 800.00.
    assert len(shown) == 2
    assert sum(claim.fund_paid for claim in shown) == result.actual == Decimal("800.00")
    outside = next(claim for claim in shown if claim.fund_paid == Decimal("300.00"))
    # Listed, never opened or acted on: the claim's own page stays out of the hospital's scope.
    assert drill.context["cl"].list_display_links is None and drill.context["action_form"] is None
    change = reverse("admin:settlement_outpatientclaim_change", args=[outside.pk])
    assert client.get(change).status_code == 404
    # Without the drill-down the hospital's changelist is scoped as before: no claim at B's hospital.
    plain = client.get(reverse("admin:settlement_outpatientclaim_changelist"))
    assert outside.pk not in {claim.pk for claim in plain.context["cl"].result_list}
    # An export of the drill-down stays within the hospital's own scope (ID numbers in full).
    text = client.get(reverse("admin:settlement_outpatientclaim_export"),
                      {"_format": "csv", "settlement_unit": result.pk}).content.decode("utf-8-sig")
    exported = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert exported == [next(c.serial for c in shown if c.fund_paid == Decimal("500.00"))]
    # Other filters only narrow the drill-down, never widen it.
    narrowed = client.get(reverse("admin:settlement_outpatientclaim_changelist")
                          + f"?settlement_unit={result.pk}&visit_type__exact=慢病门诊")
    assert list(narrowed.context["cl"].result_list) == []


def test_statement_prints_the_figures(client, make_user, settled):
    county, a, b, run = settled
    login(client, make_user("city"))
    result = UnitResult.objects.get(run=run, unit_code="YGT-B")
    page = client.get(reverse("admin:settlement_unitresult_statement", args=[result.pk])).content.decode()
    assert "医保基金年终清算单" in page
    # Q 2,400.00, A 2,900.00, S = 2,400 − 2,900 = −500.00, unit part −0.85 × 500 = −425.00, fund −75.00,
    # E = 2,900 − 425 = 2,475.00: printed with separators and a real minus (U+2212)
    for figure in ("2,400.00", "2,900.00", "−500.00", "−425.00", "−75.00", "2,475.00"):
        assert figure in page


def test_a_lead_hospital_sees_only_its_alliance(client, make_user, settled):
    county, a, b, run = settled
    login(client, make_user("hospital", a.lead_hospital.code))
    page = client.get(reverse("admin:settlement_unitresult_changelist"))
    assert page.status_code == 200
    assert [r.unit_code for r in page.context["cl"].result_list] == ["YGT-A"]
    other = UnitResult.objects.get(run=run, unit_code="YGT-B")
    assert client.get(reverse("admin:settlement_unitresult_statement", args=[other.pk])).status_code == 404
    assert client.get(reverse("admin:settlement_unitresult_change", args=[other.pk])).status_code == 404
    drill = client.get(reverse("admin:settlement_outpatientclaim_changelist") + f"?settlement_unit={other.pk}")
    assert list(drill.context["cl"].result_list) == []
    # the hospital sees the run through its own unit, and cannot change it
    assert client.get(reverse("admin:settlement_settlementrun_change", args=[run.pk])).status_code == 200
    client.post(reverse("admin:settlement_settlementrun_changelist"), {"action": "approve", "_selected_action": [run.pk]})
    assert SettlementRun.objects.get(pk=run.pk).status == RunStatus.COMPUTED


def test_actions_approve_pay_and_export(client, make_user, settled):
    county, a, b, run = settled
    login(client, make_user("city"))
    url = reverse("admin:settlement_settlementrun_changelist")
    # The list action 审核 first shows what is being approved; nothing changes until confirmed.
    page = client.post(url, {"action": "approve", "_selected_action": [run.pk]})
    assert page.status_code == 200 and "确认审批" in page.content.decode()
    assert SettlementRun.objects.get(pk=run.pk).status == RunStatus.COMPUTED
    client.post(url, {"action": "approve", "_selected_action": [run.pk], "confirmed": "yes"})
    assert SettlementRun.objects.get(pk=run.pk).status == RunStatus.APPROVED
    client.post(url, {"action": "pay", "_selected_action": [run.pk]})
    assert SettlementRun.objects.get(pk=run.pk).status == RunStatus.PAID
    response = client.post(url, {"action": "export_xlsx", "_selected_action": [run.pk]})
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    from io import BytesIO

    from openpyxl import load_workbook

    rows = list(load_workbook(BytesIO(response.content)).active.iter_rows(values_only=True))
    assert rows[0][0] == "单位编码" and {r[0] for r in rows[1:]} == {"YGT-A", "YGT-B"}


def test_compute_action_on_an_approved_run_makes_version_two(client, make_user, settled, django_capture_on_commit_callbacks):
    county, a, b, run = settled
    login(client, make_user("city"))
    url = reverse("admin:settlement_settlementrun_changelist")
    client.post(url, {"action": "approve", "_selected_action": [run.pk], "confirmed": "yes"})
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "compute", "_selected_action": [run.pk]})
    v2 = SettlementRun.objects.get(version=2)
    assert v2.status == RunStatus.COMPUTED and v2.results.count() == 2


def test_start_page_and_preset_loading(client, make_user, django_capture_on_commit_callbacks):
    build_two_alliances()
    loader = make_user("city")
    login(client, loader)
    response = client.post(reverse("admin:settlement_paymentpolicy_preset"), {"city": "huzhou", "year": 2025})
    assert response.status_code == 302
    # Four eyes: the loader's own 加载后直接审批 is refused and leaves the draft as it was.
    client.post(reverse("admin:settlement_paymentpolicy_preset"), {"city": "huzhou", "year": 2025, "approve": "on"})
    assert PaymentPolicy.objects.get(scheme="capitation", year=2025).status == ApprovalStatus.DRAFT
    login(client, make_user("city"))
    response = client.post(reverse("admin:settlement_paymentpolicy_preset"), {"city": "huzhou", "year": 2025, "approve": "on"})
    assert response.status_code == 302
    policy_row = PaymentPolicy.objects.get(scheme="capitation", year=2025)
    assert policy_row.status == ApprovalStatus.APPROVED and policy_row.parameters["retention"] == "0.85"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:settlement_settlementrun_start"), {"scheme": "capitation", "year": 2025})
    assert response.status_code == 302
    assert SettlementRun.objects.get().status == RunStatus.COMPUTED


def test_policy_form_rejects_bad_parameters_in_chinese(client, make_user, db):
    login(client, make_user("city"))
    response = client.post(reverse("admin:settlement_paymentpolicy_add"), {
        "scheme": "capitation", "year": 2025, "name": "错误", "p__shown": "1", "p_retention": "1.5",
        "p_standard_valid_years": "两年",
    })
    page = response.content.decode()
    assert response.status_code == 200 and "结余留用比例不能大于1" in page and "测算标准有效年数应为整数" in page
    assert not PaymentPolicy.objects.exists()


def test_standards_approval_action_needs_the_city(client, make_user, db):
    from tests.settlement.engine_data import standard

    from tests import factories

    factories.region()
    row = standard(2025, "居民", "60周岁及以下", "1200.00", approved=False)
    url = reverse("admin:settlement_capitationstandard_changelist")
    login(client, make_user("county", "330502"))
    client.post(url, {"action": "approve_standards", "_selected_action": [row.pk]})
    assert CapitationStandard.objects.get(pk=row.pk).status == ApprovalStatus.DRAFT
    login(client, make_user("city"))
    page = client.post(url, {"action": "approve_standards", "_selected_action": [row.pk]}).content.decode()
    assert "确认审批人头标准" in page and "1200.00" in page and "最后修改人" in page
    assert CapitationStandard.objects.get(pk=row.pk).status == ApprovalStatus.DRAFT
    client.post(url, {"action": "approve_standards", "_selected_action": [row.pk], "confirmed": "yes"})
    assert CapitationStandard.objects.get(pk=row.pk).status == ApprovalStatus.APPROVED


def test_four_eyes_on_a_run_through_its_confirmation_page(client, make_user, django_capture_on_commit_callbacks):
    """Issue 18 finding 5: who computes cannot approve; the page shows the totals being approved."""
    county, a, b = build_two_alliances()
    policy()
    computer, approver = make_user("city"), make_user("city")
    login(client, computer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:settlement_settlementrun_start"), {"scheme": "capitation", "year": 2025})
    run = SettlementRun.objects.get()
    assert (run.status, run.created_by) == (RunStatus.COMPUTED, computer)
    url = reverse("admin:settlement_settlementrun_approve", args=[run.pk])
    response = client.post(url, {"confirmed": "yes"}, follow=True)
    assert "由您本人发起计算，须由另一位有审批权限的用户审批（四眼原则）" in response.content.decode()
    assert SettlementRun.objects.get().status == RunStatus.COMPUTED

    login(client, approver)
    page = client.get(url).content.decode()
    # YGT-A E 1,650.00 + YGT-B E 2,475.00 = 4,125.00; paid 800.00 + 2,900.00 = 3,700.00;
    # year-end 850.00 − 425.00 = 425.00 (build_two_alliances' hand figures).
    for label, figure in (("结算单位数", "2"), ("Σ 应得金额（元）", "4125.00"), ("Σ 已拨付（元）", "3700.00"),
                          ("Σ 年终清算金额（元）", "425.00"), ("发起计算", computer.username)):
        assert f'<th scope="row">{label}</th><td style="text-align:right">{figure}</td>' in page
    assert SettlementRun.objects.get().status == RunStatus.COMPUTED  # GET only shows
    assert client.post(url, {"confirmed": "yes"}).status_code == 302
    run.refresh_from_db()
    assert (run.status, run.created_by, run.approved_by) == (RunStatus.APPROVED, computer, approver)
    # A hospital may not even open the page.
    login(client, make_user("hospital", a.lead_hospital.code))
    assert client.get(url).status_code == 403
