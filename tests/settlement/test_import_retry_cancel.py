"""Import jobs can be cancelled (landing nothing) and retried from their stored file, by their
submitter or the city bureau only; the job page and its JSON show it."""
import datetime

from django.urls import reverse

from contracts.models import InsuredPerson
from contracts.validators import build_resident_id
from settlement.models import Job, JobStatus, OutpatientClaim
from tests import factories
from tests.settlement.test_import_support import city, model_counts, write_xlsx  # noqa: F401

from .test_import_admin import CLAIM_HEADERS

IMPORT = "admin:settlement_outpatientclaim_import"


def url(name, job):
    return reverse(f"admin:settlement_outpatientclaim_import_job{name}", args=[job.pk])


def claim_rows(id_number):
    return [
        ["MZ1", id_number, "H33050200001", "2024-01-05", "普通门诊", "", "100", "60", "40", "否"],
        ["MZ2", id_number, "H33050200002", "2024-02-05", "普通门诊", "", "50", "30", "20", "否"],
    ]


def upload(client, path, capture, execute=True):
    with open(path, "rb") as handle, capture(execute=execute):
        client.post(reverse(IMPORT), {"file": handle})
    return Job.objects.order_by("-pk").first()


def test_a_failed_import_is_retried_from_its_file_by_its_owner_only(city, client, make_user, tmp_path,
                                                                    django_capture_on_commit_callbacks):
    owner = make_user("hospital", "H33050200001")
    newcomer = build_resident_id("330502", datetime.date(1980, 1, 2), 7, "M")  # not insured yet
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, claim_rows(newcomer))
    client.force_login(owner)
    failed = upload(client, path, django_capture_on_commit_callbacks)
    assert failed.status == JobStatus.FAILED and OutpatientClaim.objects.count() == 0
    page = client.get(url("", failed)).content.decode()
    assert 'id="job-retry"' in page and "重新导入" in page and 'id="job-cancel"' not in page
    assert client.get(url("_status", failed)).json()["can_retry"] is True
    assert client.get(url("_retry", failed)).status_code == 405

    # Someone in another county does not see the job at all; an auditor sees it but may not act.
    client.force_login(make_user("hospital", "H33050300001"))
    assert client.post(url("_retry", failed)).status_code == 404
    client.force_login(make_user("auditor"))
    page = client.get(url("", failed)).content.decode()
    assert 'id="job-retry"' not in page
    refused = client.post(url("_retry", failed))
    assert refused.status_code == 403 and "只有提交人或市医保局可以" in refused.content.decode()
    assert Job.objects.count() == 1

    # The person is registered meanwhile; the owner retries the same stored file.
    person = factories.person(city.wuxing)
    InsuredPerson.objects.filter(pk=person.pk).update(id_number=newcomer)
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("_retry", failed))
    retry = Job.objects.get(retry_of=failed)
    assert response.status_code == 302 and response.url == url("", retry)
    assert (retry.status, retry.user, retry.params, retry.input_file.name) == (
        JobStatus.SUCCEEDED, owner, failed.params, failed.input_file.name)
    assert retry.counts == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0, "bad_rows": 0}
    assert sorted(OutpatientClaim.objects.values_list("serial", flat=True)) == ["MZ1", "MZ2"]
    assert Job.objects.get(pk=failed.pk).status == JobStatus.FAILED  # the first attempt keeps its ending
    assert f"任务{failed.pk}" in client.get(url("", retry)).content.decode()
    # One retry per failed job: a second one is refused in Chinese and creates nothing.
    page = client.post(url("_retry", failed), follow=True).content.decode()
    assert f"该任务已重新导入过（任务{retry.pk}）" in page and Job.objects.count() == 2


def test_a_cancelled_import_lands_nothing_and_the_city_may_retry_it(city, client, make_user, tmp_path,
                                                                    django_capture_on_commit_callbacks):
    owner = make_user("hospital", "H33050200001")
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, claim_rows(city.p1.id_number))
    client.force_login(owner)
    with open(path, "rb") as handle, django_capture_on_commit_callbacks(execute=False) as sent:
        client.post(reverse(IMPORT), {"file": handle})
    job = Job.objects.get()
    assert job.status == JobStatus.QUEUED and len(sent) == 1  # its task is still on its way
    assert 'id="job-cancel"' in client.get(url("", job)).content.decode()
    before = model_counts(OutpatientClaim)

    client.force_login(make_user("auditor"))
    assert client.post(url("_cancel", job)).status_code == 403
    client.force_login(owner)
    response = client.post(url("_cancel", job), follow=True)
    assert "导入已取消，未导入任何数据" in response.content.decode()
    status = client.get(url("_status", job)).json()
    assert (status["status"], status["status_display"], status["finished"], status["cancelled"]) == (
        "cancelled", "已取消", True, True)
    assert status["can_cancel"] is False and status["can_retry"] is True
    # The task arrives after the cancel: it leaves the job alone and lands nothing.
    sent[0]()
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert model_counts(OutpatientClaim) == before
    # Cancelling again says why not.
    assert "该导入任务当前为“已取消”，不能取消" in client.post(url("_cancel", job), follow=True).content.decode()

    # The city bureau retries it; the import runs with the submitter's scope, as the first would have.
    client.force_login(make_user("city"))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("_retry", job))
    retry = Job.objects.get(retry_of=job)
    assert (retry.status, retry.user, retry.institution) == (JobStatus.SUCCEEDED, owner, city.a)
    assert sorted(OutpatientClaim.objects.values_list("serial", flat=True)) == ["MZ1", "MZ2"]
    page = client.post(url("_cancel", retry), follow=True).content.decode()
    assert "该导入任务当前为“已完成”，不能取消" in page
    assert Job.objects.get(pk=retry.pk).status == JobStatus.SUCCEEDED
