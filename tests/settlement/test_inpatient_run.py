"""DRG settlement end to end through a real worker (SPEC §6.5, §7), and the inpatient admin pages."""
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from openpyxl import load_workbook

from alliances.models import InstitutionLevel
from settlement.engine.case_requests import (
    CaseReview,
    DiseaseExitRequest,
    RequestStatus,
    ReviewKind,
)
from settlement.engine.case_review_services import (
    decide_case_review,
    file_case_review,
    file_exit_request,
)
from settlement.engine.models import RunStatus, SettlementRun, UnitResult
from settlement.engine.schemes.drg import budget_tolerance
from settlement.engine.services import start_run
from tests import factories
from tests.settlement.engine_data import policy
from tests.settlement.inpatient_builders import (
    D,
    budget,
    case,
    coefficient,
    disease_standard,
    group,
)
from tests.worker import wait_for

HIGH, LOW = "330502-二级及以上", "330502-一级及基层"


def build_drg_city():
    """Two pools of one county; every SPEC §6.5 step appears once. Points per case in the comments."""
    county = factories.region("330502", "吴兴区")
    a = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    b = factories.institution(county=county, level=InstitutionLevel.TERTIARY)
    p = factories.institution(county=county, level=InstitutionLevel.PRIMARY)
    group("G01", "100.0000", "10000.00")
    group("G02", "50.0000", "5000.00", tcm=True)
    group("G03", "80.0000", same_price=True)
    coefficient(a, "1.2000")
    coefficient(b, "0.9000")
    person = factories.person
    # A: 120 + 64.8 + 48 + 150 (approved) = 382.8 points; 个人负担 4,800; 统筹支付 26,200
    case(a, person(), "2025-03-01", "2025-03-08", drg="G01", total="12000.00", personal="2000.00")  # 100 × 1.2
    case(a, person(), "2025-03-01", "2025-03-08", drg="G02", total="6000.00", personal="1000.00")  # 50 × 1.08 × 1.2
    # incomplete: min(100, 100 × 1.2 × 4,000 / 10,000 = 48)
    case(a, person(), "2025-04-01", "2025-04-03", drg="G01", total="4000.00", personal="800.00", incomplete=True)
    approved = case(a, person(), "2025-05-01", "2025-05-09", drg="G01", total="9000.00", personal="1000.00")
    # B: 80 + 90 + 45 + 90 = 305 points; 个人负担 7,500; 统筹支付 30,500
    case(b, person(), "2025-03-01", "2025-03-08", drg="G03", total="8000.00", personal="1500.00")  # same price: 80
    rejected = case(b, person(), "2025-03-01", "2025-03-08", drg="G01", total="10000.00", personal="2000.00")  # 90
    again = person()
    # readmitted to G01 10 days (inclusive) after discharge: the earlier case is halved, 90 × 0.5 = 45
    case(b, again, "2025-05-01", "2025-05-10", drg="G01", total="10000.00", personal="2000.00")
    case(b, again, "2025-05-20", "2025-05-28", drg="G01", total="10000.00", personal="2000.00")  # 90
    # P (lower pool): 100 points; 个人负担 400
    case(p, person(), "2025-06-01", "2025-06-05", drg="G01", total="2000.00", personal="400.00")
    budget(HIGH, "100000.00")
    budget(LOW, "3000.00")
    policy("drg")

    decide_case_review(
        file_case_review(approved, kind=ReviewKind.SPECIAL_CASE, reason="罕见病", proposed_points="180"),
        approve=True, final_points="150",
    )
    decide_case_review(
        file_case_review(rejected, kind=ReviewKind.NEW_TECHNOLOGY, reason="新技术", proposed_points="900"),
        approve=False, comment="不属于新技术目录",
    )
    return a, b, p


@pytest.mark.worker
def test_drg_settles_in_a_real_worker_and_exports(celery_worker_process, tmp_path):
    a, b, p = build_drg_city()
    run = start_run("drg", 2025)
    assert run.status == RunStatus.COMPUTING  # sent to the broker, not computed here
    done = wait_for(lambda: SettlementRun.objects.filter(pk=run.pk, status__in=[RunStatus.COMPUTED, RunStatus.FAILED]).first(),
                    timeout=90, message="DRG结算任务未在90秒内完成")
    assert done.status == RunStatus.COMPUTED, done.failure_reason
    assert (done.units_total, done.units_done) == (3, 3)

    out = tmp_path / "drg-2025.xlsx"
    call_command("export_settlement", "--year", "2025", "--scheme", "drg", "--output", str(out))
    rows = [[cell.value for cell in row] for row in load_workbook(out).active.iter_rows()]
    assert rows[0][:11] == ["单位编码", "单位名称", "预算额度", "实际支出", "结余超支", "单位分担留用", "基金分担留用",
                            "应得金额", "已拨付", "违规扣款", "年终清算金额"]
    by_code = {row[0]: {header: D(str(v)) for header, v in zip(rows[0][2:11], row[2:11])} for row in rows[1:]}
    assert set(by_code) == {a.code, b.code, p.code}

    # High pool: points 382.8 + 305 = 687.8; PV = (100,000 + 4,800 + 7,500) / 687.8 = 163.274207618… → 163.274208
    # A: Q = 382.8 × PV = 62,501.3668… → 62,501.37; E = 62,501.3668 − 4,800 → 57,701.37; A = 26,200
    assert (by_code[a.code]["预算额度"], by_code[a.code]["应得金额"], by_code[a.code]["实际支出"]) == (
        D("62501.37"), D("57701.37"), D("26200.00"),
    )
    # B: Q = 305 × PV = 49,798.6334… → 49,798.63; E = 49,798.6334 − 7,500 → 42,298.63; A = 30,500
    assert (by_code[b.code]["预算额度"], by_code[b.code]["应得金额"], by_code[b.code]["实际支出"]) == (
        D("49798.63"), D("42298.63"), D("30500.00"),
    )
    # Low pool: PV = (3,000 + 400) / 100 = 34; E = 100 × 34 − 400 = 3,000
    assert (by_code[p.code]["预算额度"], by_code[p.code]["应得金额"]) == (D("3400.00"), D("3000.00"))
    for row in by_code.values():  # nothing prepaid: the year-end amount is E; S = Q − A
        assert row["年终清算金额"] == row["应得金额"] and row["结余超支"] == row["预算额度"] - row["实际支出"]

    # Σ E over each pool = its budget (here exactly; in general within rounding)
    high = by_code[a.code]["应得金额"] + by_code[b.code]["应得金额"]
    assert abs(high - D("100000.00")) <= budget_tolerance(2, Decimal("687.8"))
    assert high == D("100000.00")
    assert by_code[p.code]["应得金额"] == D("3000.00")


# --- admin pages -------------------------------------------------------------------------------


@pytest.fixture
def drg_run(db):
    a, b, _ = build_drg_city()
    return start_run("drg", 2025, sync=True), a, b


def test_unit_result_page_lists_each_case_derivation(client, make_user, drg_run):
    run, a, b = drg_run
    result = UnitResult.objects.get(run=run, unit_code=a.code)
    client.force_login(make_user("hospital", a.code))
    response = client.get(reverse("admin:settlement_unitresult_change", args=[result.pk]))
    assert response.status_code == 200
    page = response.context["drg_cases"]
    rows = list(page)
    assert page.paginator.count == 4
    points = sorted(row["points"] for row in rows)
    assert points == [D("48.0000"), D("64.8000"), D("120.0000"), D("150.0000")]
    assert sum(points) == D("382.8000")  # = the unit's points in the statement
    assert D(result.details["points"]) == D("382.8000")
    incomplete = next(row for row in rows if row["incomplete_stay"])
    assert incomplete["incomplete_factor"] == D("0.4000")  # 4,000 / 10,000
    approved = next(row for row in rows if row["approved_points"] is not None)
    assert (approved["computed_points"], approved["points"]) == (D("120.0000"), D("150.0000"))
    assert "DRG病例点数计算明细" in response.content.decode()
    # The other hospital can't open A's statement at all.
    client.force_login(make_user("hospital", b.code))
    assert client.get(reverse("admin:settlement_unitresult_change", args=[result.pk])).status_code == 404


def test_hospital_files_and_county_decides_in_the_admin(client, make_user, drg_run):
    _, a, _ = drg_run
    target = a.inpatient_cases.get(drg_code="G02")
    client.force_login(make_user("hospital", a.code))
    response = client.post(reverse("admin:settlement_casereview_add"), {
        "case": target.pk, "kind": ReviewKind.NEW_TECHNOLOGY, "reason": "达芬奇机器人", "proposed_points": "70",
    })
    assert response.status_code == 302, response.content.decode()[-2000:]
    review = CaseReview.objects.get(case=target)
    assert (review.status, review.proposed_points) == (RequestStatus.PENDING, D("70.0000"))
    # The service's refusal is shown on the form, nothing lands.
    response = client.post(reverse("admin:settlement_casereview_add"), {
        "case": target.pk, "kind": ReviewKind.NEW_TECHNOLOGY, "reason": "再次", "proposed_points": "70",
    })
    assert response.status_code == 200 and "不能重复提交" in response.content.decode()
    assert CaseReview.objects.filter(case=target).count() == 1
    decide_url = reverse("admin:settlement_casereview_decide", args=[review.pk])
    assert client.get(decide_url).status_code == 403  # hospital can't decide

    client.force_login(make_user("county", "330502"))
    response = client.post(decide_url, {"decision": "approve", "final_points": ""})
    assert "批准时须填写核定点数" in response.content.decode()
    response = client.post(decide_url, {"decision": "approve", "final_points": "66.5"})
    assert response.status_code == 302
    review.refresh_from_db()
    assert (review.status, review.final_points) == (RequestStatus.APPROVED, D("66.5000"))


def test_exit_decision_page_asks_for_the_override_reason(client, make_user, db):
    county = factories.region("330502", "吴兴区")
    hospital = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    disease_standard("K35.8", InstitutionLevel.SECONDARY, "5000.00")
    cases = [case(hospital, factories.person(), "2025-03-01", "2025-03-05", diagnosis="K35.8") for _ in range(2)]
    request = file_exit_request(cases[0], reason="转科")  # 1 of 2 = 50% > 15%
    client.force_login(make_user("city"))
    url = reverse("admin:settlement_diseaseexitrequest_decide", args=[request.pk])
    response = client.post(url, {"decision": "approve"})
    assert "当前退出率为0.00%（0/2）" in response.content.decode()
    response = client.post(url, {"decision": "approve", "override": "on", "override_reason": "院感暴发"})
    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.override, request.override_reason) == (RequestStatus.APPROVED, True, "院感暴发")
    assert DiseaseExitRequest.objects.get(pk=request.pk).history.first().override_reason == "院感暴发"
