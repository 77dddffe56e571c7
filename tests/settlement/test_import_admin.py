"""The admin door: upload page → Job → progress JSON → done; template; scoped, filtered export."""
import csv
import datetime
import io
from decimal import Decimal

from django.urls import reverse
from openpyxl import load_workbook

from settlement.imports.resources import RESOURCES
from settlement.imports.services import import_file
from settlement.models import Job, JobStatus, OutpatientClaim, VisitType
from tests.settlement.test_import_support import city, model_counts, write_xlsx  # noqa: F401

CLAIM_HEADERS = RESOURCES["outpatient_claims"].headers


def claim(city, serial, institution, visit_type=VisitType.GENERAL):
    return OutpatientClaim.objects.create(
        institution=institution, serial=serial, person=city.p1, visit_date=datetime.date(2024, 1, 5),
        insurance_type="居民", visit_type=visit_type, total_cost=Decimal("10.00"), fund_paid=Decimal("6.00"),
        personal_paid=Decimal("4.00"),
    )


def test_upload_creates_job_that_reports_progress_and_result(city, client, make_user, tmp_path, django_capture_on_commit_callbacks):
    user = make_user("hospital", "H33050200001")
    client.force_login(user)
    changelist = client.get(reverse("admin:settlement_outpatientclaim_changelist"))
    assert reverse("admin:settlement_outpatientclaim_import") in changelist.content.decode()
    page = client.get(reverse("admin:settlement_outpatientclaim_import"))
    assert page.status_code == 200 and "只导入正确的行" in page.content.decode()

    rows = [
        ["MZ1", city.p1.id_number, "H33050200002", "2024-01-05", "普通门诊", "", "100", "60", "40", "否"],
        ["MZ2", city.p1.id_number, "H33050300001", "2024-01-05", "普通门诊", "", "100", "60", "40", "否"],
    ]
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, rows)
    with open(path, "rb") as upload, django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:settlement_outpatientclaim_import"), {"file": upload, "land_good_rows": "on"})
    job = Job.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:settlement_outpatientclaim_import_job", args=[job.pk])
    assert (job.kind, job.user, job.institution, job.params) == (
        "import", user, city.a, {"resource": "outpatient_claims", "land_good_rows": True})

    status = client.get(reverse("admin:settlement_outpatientclaim_import_job_status", args=[job.pk])).json()
    assert (status["status"], status["finished"], status["done"], status["total"], status["percent"]) == (
        JobStatus.SUCCEEDED, True, 2, 2, 100)
    assert status["counts"] == {"rows": 2, "created": 1, "updated": 0, "unchanged": 0, "bad_rows": 1}
    assert status["message"] == "门诊结算记录：共2行，新增1行，更新0行，未变化0行；1行有错误未导入（见错误清单）。"
    assert "第3行“机构编码”列（值：H33050300001）：不在您的数据范围内" in status["log"]
    assert list(OutpatientClaim.objects.values_list("serial", flat=True)) == ["MZ1"]

    result = client.get(status["result_url"])
    errors = list(load_workbook(io.BytesIO(b"".join(result.streaming_content))).active.iter_rows(values_only=True))
    assert errors[0][-1] == "错误原因" and errors[1][0] == "MZ2"

    job_page = client.get(reverse("admin:settlement_outpatientclaim_import_job", args=[job.pk]))
    assert job_page.status_code == 200 and 'id="job-progress"' in job_page.content.decode()
    # Coming back later: the import page lists the user's recent jobs with a link to each.
    again = client.get(reverse("admin:settlement_outpatientclaim_import")).content.decode()
    assert reverse("admin:settlement_outpatientclaim_import_job", args=[job.pk]) in again


def test_all_or_nothing_job_fails_with_message(city, client, make_user, tmp_path, django_capture_on_commit_callbacks):
    client.force_login(make_user("city"))
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, [["MZ1", city.p1.id_number, "H33050200001", "2024-13-01", "普通门诊", "", "1", "1", "0", ""]])
    with open(path, "rb") as upload, django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:settlement_outpatientclaim_import"), {"file": upload})
    job = Job.objects.get()
    assert job.status == JobStatus.FAILED
    assert job.message.startswith("门诊结算记录：共1行，其中1行有错误，未导入任何数据")
    assert "第2行“就诊日期”列（值：2024-13-01）：不是有效日期" in job.log
    assert OutpatientClaim.objects.count() == 0


def test_rejected_file_job_and_other_users_cannot_see_it(city, client, make_user, tmp_path, django_capture_on_commit_callbacks):
    owner = make_user("hospital", "H33050200001")
    client.force_login(owner)
    bogus = tmp_path / "claims.csv"
    bogus.write_bytes(b"\x00\x01binary")
    with open(bogus, "rb") as upload, django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:settlement_outpatientclaim_import"), {"file": upload})
    job = Job.objects.get()
    assert (job.status, job.message) == (JobStatus.FAILED, "文件不是电子表格：请上传xlsx或csv格式的文件")
    client.force_login(make_user("hospital", "H33050300001"))
    assert client.get(reverse("admin:settlement_outpatientclaim_import_job_status", args=[job.pk])).status_code == 404


def test_wrong_extension_is_refused_on_the_form(city, client, make_user, tmp_path):
    client.force_login(make_user("city"))
    path = tmp_path / "claims.pdf"
    path.write_bytes(b"%PDF")
    with open(path, "rb") as upload:
        response = client.post(reverse("admin:settlement_outpatientclaim_import"), {"file": upload})
    assert response.status_code == 200 and "只支持xlsx或csv文件" in response.content.decode()
    assert Job.objects.count() == 0


def test_no_import_for_users_without_add_permission(city, client, make_user):
    client.force_login(make_user("hospital", "H33050200001"))
    changelist = client.get(reverse("admin:contracts_disease_changelist")).content.decode()
    assert reverse("admin:contracts_disease_import") not in changelist
    assert reverse("admin:contracts_disease_export") in changelist
    assert client.get(reverse("admin:contracts_disease_import")).status_code == 403


def test_template_has_headers_only_and_its_example_on_a_notes_sheet(city, client, make_user):
    """Issue 18 finding 7: the example is never a data row of the sheet the importer reads."""
    client.force_login(make_user("city"))
    response = client.get(reverse("admin:settlement_inpatientcase_import_template"))
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["导入模板", "说明"]
    rows = list(workbook["导入模板"].iter_rows(values_only=True))
    assert rows == [tuple(RESOURCES["inpatient_cases"].headers)]
    notes = list(workbook["说明"].iter_rows(values_only=True))
    assert "示例仅作填写参考" in notes[0][0] and notes[1] == ("列名", "是否必填", "示例（仅供参考，不会导入）")
    assert ("病案号*", "必填", "ZY2024000001") in notes


def test_the_template_uploaded_back_as_it_is_lands_nothing(city, client, make_user, tmp_path,
                                                           django_capture_on_commit_callbacks):
    """Before, row 2 (330502197005170032 张三) landed as a real person through 只导入正确的行."""
    client.force_login(make_user("city"))
    path = tmp_path / "persons.xlsx"
    path.write_bytes(client.get(reverse("admin:contracts_insuredperson_import_template")).content)
    with open(path, "rb") as upload, django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:contracts_insuredperson_import"), {"file": upload, "land_good_rows": "on"})
    job = Job.objects.get()
    status = client.get(reverse("admin:contracts_insuredperson_import_job_status", args=[job.pk])).json()
    assert status["counts"] == {"rows": 0, "created": 0, "updated": 0, "unchanged": 0, "bad_rows": 0}


def test_every_export_and_error_list_download_leaves_a_record_auditors_read(
        city, client, make_user, tmp_path, django_capture_on_commit_callbacks):
    """Issue 18 finding 8: who exported which persons' data, when, with which filter, how many rows."""
    from alliances.models import ExportRecord

    claim(city, "MZ-B1", city.b)
    claim(city, "MZ-B2", city.b, VisitType.CHRONIC)
    claim(city, "MZ-C1", city.c)
    hospital, other, auditor = make_user("hospital", "H33050200002"), make_user("hospital", "H33050300001"), \
        make_user("auditor")
    client.force_login(hospital)
    url = reverse("admin:settlement_outpatientclaim_export")
    client.get(url, {"_format": "csv", "visit_type__exact": "慢病门诊"})
    client.get(url, {"_format": "xlsx"})
    first, second = ExportRecord.objects.order_by("pk")
    assert (first.user, first.channel, first.resource, first.rows) == (hospital, "后台导出", "outpatient_claims", 1)
    assert first.filters == "visit_type__exact=慢病门诊" and first.file_name.endswith(".csv")
    assert (second.rows, second.filters) == (2, "（无筛选）")  # still within the hospital's scope: MZ-B1, MZ-B2

    # The error list of an upload carries the rejected rows in full: its download is recorded too.
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, [
        ["MZ9", city.p1.id_number, "H33050300001", "2024-01-05", "普通门诊", "", "100", "60", "40", "否"],
    ])
    with open(path, "rb") as upload, django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:settlement_outpatientclaim_import"), {"file": upload, "land_good_rows": "on"})
    job = Job.objects.get()
    client.get(reverse("admin:settlement_outpatientclaim_import_job_result", args=[job.pk]))
    download = ExportRecord.objects.latest("pk")
    assert (download.user, download.channel, download.rows) == (hospital, "错误清单下载", 1)
    assert f"导入任务#{job.pk}" in download.filters

    changelist = reverse("admin:alliances_exportrecord_changelist")
    # Others see at most their own records; auditors (and the city bureau) see every one.
    assert list(client.get(changelist).context["cl"].result_list) == list(ExportRecord.objects.all())
    client.force_login(other)
    assert list(client.get(changelist).context["cl"].result_list) == []
    assert client.get(reverse("admin:alliances_exportrecord_change", args=[first.pk])).status_code == 302
    client.force_login(auditor)
    page = client.get(changelist)
    assert len(page.context["cl"].result_list) == 3 and "后台导出" in page.content.decode()
    # Read-only through every door of the admin, even for the city bureau.
    client.force_login(make_user("city"))
    assert client.get(reverse("admin:alliances_exportrecord_add")).status_code == 403
    client.post(reverse("admin:alliances_exportrecord_change", args=[first.pk]), {"rows": 0})
    client.post(reverse("admin:alliances_exportrecord_delete", args=[first.pk]), {"post": "yes"})
    first.refresh_from_db()
    assert first.rows == 1


def test_export_respects_scope_filters_and_neutralises_formulas(city, client, make_user, tmp_path):
    claim(city, "=HYPERLINK(\"http://x\")", city.b)
    claim(city, "MZ-B2", city.b, VisitType.CHRONIC)
    claim(city, "MZ-C1", city.c)
    client.force_login(make_user("hospital", "H33050200002"))
    url = reverse("admin:settlement_outpatientclaim_export")
    text = client.get(url, {"_format": "csv"}).content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == CLAIM_HEADERS
    assert sorted(row[0] for row in rows[1:]) == ["'=HYPERLINK(\"http://x\")", "MZ-B2"]
    filtered = client.get(url, {"_format": "csv", "visit_type__exact": "慢病门诊"}).content.decode("utf-8-sig")
    assert [row[0] for row in csv.reader(io.StringIO(filtered))][1:] == ["MZ-B2"]

    response = client.get(url, {"_format": "xlsx"})
    data = b"".join(response.streaming_content)
    sheet = load_workbook(io.BytesIO(data)).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0] == CLAIM_HEADERS and len(values) == 3
    assert all(not str(cell).startswith("=") for row in values for cell in row if cell is not None)


def test_exported_file_reimports_unchanged(city, client, make_user, tmp_path):
    claim(city, "MZ1", city.a)
    claim(city, "MZ2", city.b, VisitType.CHRONIC)
    client.force_login(make_user("city"))
    response = client.get(reverse("admin:settlement_outpatientclaim_export"), {"_format": "xlsx"})
    path = tmp_path / "export.xlsx"
    path.write_bytes(b"".join(response.streaming_content))
    before = model_counts(OutpatientClaim)
    result = import_file("outpatient_claims", path)
    assert (result.rows, result.unchanged, result.bad_rows) == (2, 2, 0)
    assert model_counts(OutpatientClaim) == before


def test_job_whose_submitter_is_gone_does_not_run(city, make_user, tmp_path, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from settlement.imports.services import submit_import
    from settlement.imports.tasks import run_import_job

    user = make_user("city")
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, [["MZ1", city.p1.id_number, "H33050200001", "2024-01-01", "普通门诊", "", "1", "1", "0", ""]])
    job = submit_import("outpatient_claims", SimpleUploadedFile("claims.xlsx", path.read_bytes()), user)
    user.is_active = False
    user.save()
    run_import_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.message) == (JobStatus.FAILED, "提交人账号已不存在或已停用，导入未执行")
    assert OutpatientClaim.objects.count() == 0
