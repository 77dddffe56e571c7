"""What a clerk sees on a run, a unit result, a 清算单 and a job (issue 12): Chinese, formatted money,
no save buttons where nothing can be saved, the actions the run allows as buttons for who may use them."""
import io
import re
from decimal import Decimal

import openpyxl
import pytest
from django.urls import reverse

from alliances.formatting import money
from contracts.models import Contract, DiseaseRegistration
from settlement.engine import services
from settlement.engine.display import warning_summary
from settlement.engine.models import RunStatus, SettlementRun, UnitResult
from settlement.engine.services import start_run
from settlement.imports.errors import RowError
from settlement.imports.services import _error_text
from settlement.models import Job, JobKind, JobStatus
from tests import factories
from tests.settlement.engine_data import d, policy
from tests.settlement.test_engine_runs import build_two_alliances

pytestmark = pytest.mark.django_db
SAVE_BUTTONS = ('name="_save"', 'name="_continue"', 'name="_addanother"', 'class="deletelink"')


@pytest.fixture
def settled():
    county, a, b = build_two_alliances()
    # p1 of alliance A has a registered chronic disease with no standard: one warning line
    person = Contract.objects.filter(institution=a.lead_hospital).order_by("start").first().person
    disease = factories.disease(code="K74", name="肝硬化")
    DiseaseRegistration.objects.create(person=person, disease=disease, filed_on=d("2024-03-01"))
    policy()
    run = start_run("capitation", 2025, sync=True)
    return county, a, b, run


def page(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def visible_text(html):
    """The page as read: without tags, attributes and scripts."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S))


def test_money_has_separators_and_a_real_minus():
    assert money(Decimal("77626.75")) == "77,626.75"
    assert money(Decimal("-43065.05")) == "\u221243,065.05"
    assert money("1234567.5") == "1,234,567.50"
    assert money(Decimal("-0.00")) == "0.00"  # no minus on nothing
    assert money(None) == "—"


def test_run_page_reads_in_chinese_without_save_buttons(client, make_user, settled):
    county, a, b, run = settled
    html = page(client, make_user("city"), reverse("admin:settlement_settlementrun_change", args=[run.pk]))
    # the policy snapshot as a label/value table, never JSON or parameter names
    assert "结余留用比例" in html and "各病种标准逐项叠加" in html and "普通门诊、慢病门诊" in html
    text = visible_text(html)
    for code in ('{"retention"', "add_all", "disease_add_mode", "capitation"):
        assert code not in text
    for button in SAVE_BUTTONS:
        assert button not in html
    # B: S = 2,400.00 − 2,900.00 = −500.00, year-end −425.00 (85 % of the overspend)
    assert "\u2212500.00" in html and "\u2212425.00" in html and "2,400.00" in html
    assert "2025年门诊按人头付费（全市）结算" == run.job.title


def test_run_page_buttons_follow_state_and_role(client, make_user, settled):
    county, a, b, run = settled
    url = reverse("admin:settlement_settlementrun_change", args=[run.pk])
    city = page(client, make_user("city"), url)
    assert "run-action-compute" in city and "run-action-export" in city and "run-action-print" in city
    assert "run-action-pay" not in city  # computed, not approved yet
    # 审核 leads to the confirmation page, for a second person only (four eyes).
    approve_url = reverse("admin:settlement_settlementrun_approve", args=[run.pk])
    assert "run-action-approve" in city and approve_url in city
    computer = make_user("city")
    SettlementRun.objects.filter(pk=run.pk).update(created_by=computer)
    assert "run-action-approve" not in page(client, computer, url)
    assert "run-action-approve" in page(client, make_user("city"), url)
    for reader in (make_user("auditor"), make_user("hospital", a.lead_hospital.code)):
        html = page(client, reader, url)
        assert "run-action-export" in html and "run-action-print" in html
        assert "run-action-compute" not in html and "run-action-pay" not in html
    services.approve_run(run, user=make_user("city"))
    approved = page(client, make_user("city"), url)
    assert "run-action-pay" in approved and "重算（生成新版本）" in approved


def test_run_buttons_call_the_services_and_refuse_in_chinese(client, make_user, settled):
    county, a, b, run = settled
    auditor = make_user("auditor")
    client.force_login(auditor)
    refused = client.post(reverse("admin:settlement_settlementrun_act", args=[run.pk, "compute"]), follow=True)
    assert "您没有权限发起结算" in refused.content.decode()
    assert SettlementRun.objects.get(pk=run.pk).computation == run.computation
    city = make_user("city")
    client.force_login(city)
    assert client.get(reverse("admin:settlement_settlementrun_act", args=[run.pk, "pay"])).status_code == 405
    not_yet = client.post(reverse("admin:settlement_settlementrun_act", args=[run.pk, "pay"]), follow=True)
    assert "只有“已审核”的结算批次才能确认拨付" in not_yet.content.decode()
    services.approve_run(run, user=city)
    client.post(reverse("admin:settlement_settlementrun_act", args=[run.pk, "pay"]))
    assert SettlementRun.objects.get(pk=run.pk).status == RunStatus.PAID


def test_export_button_keeps_plain_numbers(client, make_user, settled):
    county, a, b, run = settled
    client.force_login(make_user("city"))
    response = client.get(reverse("admin:settlement_settlementrun_export", args=[run.pk]))
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    values = [cell for row in sheet.iter_rows(values_only=True) for cell in row]
    assert not any(isinstance(v, str) and "\u2212" in v for v in values)
    assert any(str(v) in ("-425", "-425.00", "-425.0") for v in values if v is not None)


def test_warnings_are_summarised_below_the_results(client, make_user, settled):
    county, a, b, run = settled
    html = page(client, make_user("city"), reverse("admin:settlement_settlementrun_change", args=[run.pk]))
    assert html.index('id="results-group"') < html.index('id="warning-summary"')
    assert "病种没有已审批的人头标准（未计入额度）：1条" in html
    assert re.search(r"<details[^>]*>.*肝硬化（K74）", html, re.S)


def test_warning_summary_counts_each_kind():
    groups = warning_summary([
        "甲：病种肝硬化（K74）在居民60周岁及以下没有已审批的人头标准，6人·月未计入额度",
        "乙：病种血友病（D66）在职工60周岁以上没有已审批的人头标准，12人·月未计入额度",
        "丙医共体总额付费状态为“已申请”，尚未获批",
    ])
    assert [(g["kind"], g["count"]) for g in groups] == [
        ("病种没有已审批的人头标准（未计入额度）", 2), ("总额付费尚未获批", 1)]


def test_unit_page_is_read_only_and_links_its_statement(client, make_user, settled):
    county, a, b, run = settled
    result = UnitResult.objects.get(run=run, unit_code="YGT-B")
    html = page(client, make_user("city"), reverse("admin:settlement_unitresult_change", args=[result.pk]))
    assert reverse("admin:settlement_unitresult_statement", args=[result.pk]) in html
    for button in SAVE_BUTTONS:
        assert button not in html
    for code in ("classes", "diseases", "add_all", "quota_base"):
        assert f">{code}<" not in html
    assert "普通门诊人头（按险种、年龄段）" in html
    # the results list: the key money columns and the 打印 link, formatted
    listing = page(client, make_user("city"), reverse("admin:settlement_unitresult_changelist"))
    assert "\u2212425.00" in listing and "2,475.00" in listing and "打印" in listing


def test_start_form_defaults_to_the_latest_year_with_data_and_only_for_who_may_start(client, make_user, settled):
    city = make_user("city")
    html = page(client, city, reverse("admin:settlement_settlementrun_start"))
    assert 'name="year" value="2025"' in html  # the claims of build_two_alliances are of 2025
    assert "新建结算" in page(client, city, reverse("admin:settlement_settlementrun_changelist"))
    for user in (make_user("auditor"), make_user("hospital", settled[1].lead_hospital.code)):
        listing = page(client, user, reverse("admin:settlement_settlementrun_changelist"))
        assert reverse("admin:settlement_settlementrun_start") not in listing
        assert 'value="compute"' not in listing
        client.force_login(user)
        assert client.get(reverse("admin:settlement_settlementrun_start")).status_code == 403


def test_a_failed_run_shows_no_full_progress_bar(client, make_user, settled):
    county, a, b, run = settled
    SettlementRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, failure_reason="工作进程中断")
    html = page(client, make_user("city"), reverse("admin:settlement_settlementrun_changelist"))
    assert 'value="100"' not in html and "失败（2/2）" in html


def test_a_failed_import_job_page_ends_its_bar_and_its_background_note(client, make_user):
    user = make_user("city")
    job = Job.objects.create(kind=JobKind.IMPORT, title="导入：参保人", user=user, status=JobStatus.FAILED,
                             progress_total=3, progress_done=3, params={"resource": "persons"})
    html = page(client, user, reverse("admin:contracts_insuredperson_import_job", args=[job.pk]))
    assert re.search(r'<progress id="job-progress"[^>]*hidden', html)
    assert "任务会在后台继续运行" not in html


def test_an_error_reason_names_its_column_once():
    error = RowError(3, "身份证号", "330502197005170031", "身份证号校验位错误，请核对号码")
    assert _error_text(error) == "身份证号校验位错误，请核对号码"
    assert str(error) == "第3行（值：330502197005170031）：身份证号校验位错误，请核对号码"
    other = RowError(4, "险种", "农民", "应为职工或居民")
    assert _error_text(other) == "“险种”应为职工或居民"


def test_a_job_is_a_record_no_one_deletes(client, make_user, settled):
    *_, run = settled
    client.force_login(make_user("city"))
    page_html = client.get(reverse("admin:settlement_job_change", args=[run.job_id])).content.decode()
    assert "deletelink" not in page_html
    assert client.post(reverse("admin:settlement_job_delete", args=[run.job_id]), {"post": "yes"}).status_code == 403
    assert Job.objects.filter(pk=run.job_id).exists()
