"""The audit's doors: `audit` and `export_findings` (SPEC §5) and the admin pages (SPEC §9)."""
import csv
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from openpyxl import load_workbook

from alliances.models import InstitutionLevel
from settlement.audit.export import HEADERS
from settlement.audit.models import Finding, FindingStatus
from settlement.audit.services import run_audit
from settlement.models import Job
from tests import factories
from tests.settlement.audit_builders import claim
from tests.settlement.inpatient_builders import case, group

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(county, other_county):
    here = factories.institution(county=county, level=InstitutionLevel.TERTIARY)
    there = factories.institution(county=other_county)
    patient = factories.person(county=county)
    for inst in (here, there):
        claim(inst, patient, "2025-03-01", total="120.00", personal="20.00")
        claim(inst, patient, "2025-03-01", total="120.00", personal="20.00")
    group("FR11", "2.0", average_cost="10000.00")
    case(here, patient, "2025-04-01", "2025-04-20", drg="FR11", total="31000.00", serial="BA-HIGH")
    return {"here": here, "there": there, "patient": patient}


def test_audit_command_sync_reports_each_rule(data, capsys):
    call_command("audit", "--year", "2025", "--rule", "DUP01", "--rule", "HIC01", "--sync")
    out = capsys.readouterr().out
    assert "审核完成：2条规则，疑点3条" in out
    assert "DUP01 重复结算：疑点2条，失效0条" in out and "HIC01 高倍率病例：疑点1条" in out
    assert Finding.objects.count() == 3


def test_audit_command_queues_a_job_without_sync(data, capsys, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("audit", "--year", "2025", "--rule", "DUP01", "--region", data["here"].county.code)
    assert "已提交后台运行" in capsys.readouterr().out
    job = Job.objects.get(kind="audit")  # tasks run in-process in tests: already done
    assert job.status == "succeeded" and Finding.objects.get().institution == data["here"]


@pytest.mark.parametrize("args, reason", [
    (["--year", "abcd"], "年度“abcd”无效"),
    (["--year", "2025", "--rule", "NOPE"], "未知的审核规则“NOPE”"),
    (["--year", "2025", "--region", "999999"], "区划代码“999999”不存在"),
])
def test_audit_command_bad_input(db, args, reason):
    with pytest.raises(CommandError, match=reason):
        call_command("audit", *args, "--sync")
    assert not Finding.objects.exists()


def test_export_findings_csv_and_xlsx(data, tmp_path):
    run_audit(2025)
    out = tmp_path / "f.csv"
    call_command("export_findings", "--year", "2025", "--rule", "HIC01", "--output", str(out))
    with open(out, encoding="utf-8-sig") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["规则编码", "规则名称", "严重程度", "机构编码", "身份证号", "单据号", "涉及金额", "状态", "依据"]
    assert rows[1][:8] == ["HIC01", "高倍率病例", "提示", data["here"].code, data["patient"].id_number, "BA-HIGH",
                           "21000.00", "待核查"]  # 31000.00 − 10000.00
    xlsx = tmp_path / "f.xlsx"
    call_command("export_findings", "--year", "2025", "--region", data["there"].county.code, "--output", str(xlsx))
    sheet = load_workbook(xlsx).active
    values = list(sheet.values)
    assert list(values[0]) == HEADERS and len(values) == 2
    assert values[1][3] == data["there"].code and values[1][4] == data["patient"].id_number  # text, all 18 digits
    assert Decimal(str(values[1][6])) == Decimal("100.00")


@pytest.mark.parametrize("args, reason", [
    (["--year", "2025", "--output", "f.txt"], "应以 .xlsx 或 .csv 结尾"),
    (["--year", "2025", "--rule", "BAD", "--output", "f.csv"], "未知的审核规则“BAD”"),
    (["--year", "2025", "--output", "/nonexistent-dir/f.csv"], "无法写入输出文件"),
])
def test_export_findings_bad_input(db, args, reason):
    with pytest.raises(CommandError, match=reason):
        call_command("export_findings", *args)


# --- admin -------------------------------------------------------------------------------------


def test_changelist_filters_and_scope(data, client, make_user):
    run_audit(2025)
    staff = make_user("hospital", data["here"].code)
    client.force_login(staff)
    url = reverse("admin:settlement_finding_changelist")
    page = client.get(url).content.decode()
    assert "BA-HIGH" in page
    theirs = Finding.objects.get(institution=data["there"])
    assert client.get(reverse("admin:settlement_finding_change", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:settlement_finding_appeal", args=[theirs.pk])).status_code == 404
    filtered = client.get(url + "?rule=DUP01&severity=违规&status=待核查").content.decode()
    assert "BA-HIGH" not in filtered and "重复结算" in filtered
    assert client.get(reverse("admin:settlement_finding_run")).status_code == 403


def test_detail_links_evidence_and_appeal_through_admin(data, client, make_user):
    run_audit(2025, ["DUP01"])
    finding = Finding.objects.get(institution=data["here"])
    client.force_login(make_user("hospital", data["here"].code))
    page = client.get(reverse("admin:settlement_finding_change", args=[finding.pk])).content.decode()
    assert finding.evidence in page
    assert reverse("admin:settlement_outpatientclaim_change", args=[finding.claim_id]) in page
    assert reverse("admin:settlement_outpatientclaim_change", args=[finding.evidence_data["earlier_claim_id"]]) in page
    assert reverse("admin:settlement_finding_appeal", args=[finding.pk]) in page
    appeal_url = reverse("admin:settlement_finding_appeal", args=[finding.pk])
    empty = client.post(appeal_url, {"reason": ""})
    assert empty.status_code == 200 and "这个字段是必填项" in empty.content.decode()
    client.post(appeal_url, {"reason": "同日两次挂号，分别就诊"})
    finding.refresh_from_db()
    assert finding.status == FindingStatus.APPEALED


def test_bulk_review_and_run_page(data, client, make_user, django_capture_on_commit_callbacks):
    run_audit(2025, ["DUP01"])
    county_user = make_user("county", data["here"].county.code)
    client.force_login(county_user)
    url = reverse("admin:settlement_finding_changelist")
    ids = [str(pk) for pk in Finding.objects.values_list("pk", flat=True)]
    # The reason is asked first; another county's id never reaches the decision (the changelist is scoped).
    ask = client.post(url, {"action": "confirm_selected", "_selected_action": ids})
    assert "批量认定为已确认违规" in ask.content.decode()
    assert not Finding.objects.exclude(status=FindingStatus.OPEN).exists()
    client.post(url, {"action": "confirm_selected", "_selected_action": ids, "apply": "1", "reason": "核实"})
    ours = Finding.objects.get(institution=data["here"])
    assert ours.status == FindingStatus.CONFIRMED and ours.steps.get().user == county_user
    assert Finding.objects.get(institution=data["there"]).status == FindingStatus.OPEN

    with django_capture_on_commit_callbacks(execute=True):
        run = client.post(reverse("admin:settlement_finding_run"),
                          {"year": "2025", "region": data["here"].county.pk, "rules": ["HIC01"]})
    job = Job.objects.get(kind="audit")
    assert run.status_code == 302 and run.url == reverse("admin:settlement_job_change", args=[job.pk])
    assert job.status == "succeeded" and job.percent == 100


def test_high_multiple_case_offers_a_prefilled_special_case_request(data, client, make_user):
    run_audit(2025, ["HIC01"])
    finding = Finding.objects.get()
    client.force_login(make_user("hospital", data["here"].code))
    page = client.get(reverse("admin:settlement_finding_change", args=[finding.pk])).content.decode()
    assert "申请特病单议" in page
    add = reverse("admin:settlement_casereview_add")
    form = client.get(f"{add}?case={finding.case_id}&kind=special&reason=x")
    assert form.status_code == 200 and "BA-HIGH" in form.content.decode()


def test_changelist_counts_per_rule_and_institution_in_scope(data, client, make_user):
    run_audit(2025)
    client.force_login(make_user("county", data["here"].county.code))
    page = client.get(reverse("admin:settlement_finding_changelist") + "?rule=DUP01").content.decode()
    table = page.split('id="audit-counts"')[1].split("</table>")[0]
    # One duplicate in this county (the other county's is out of scope): 1 finding, 120.00 − 20.00 = 100.00.
    assert f"<td>DUP01</td><td>重复结算</td><td>{data['here'].code}</td><td>1</td><td>100.00</td>" in table
    assert data["there"].code not in table and "HIC01" not in table
