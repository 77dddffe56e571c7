"""A task goes through a real Celery worker process on Redis and its result lands in the database."""
import pytest
from django.contrib.auth.models import Group

from settlement.tasks import sync_roles_job
from settlement import jobs
from settlement.models import Job, JobKind, JobStatus
from tests.worker import wait_for


@pytest.mark.worker
def test_role_sync_job_runs_in_a_real_worker(celery_worker_process):
    Group.objects.all().delete()
    job = jobs.create_job(JobKind.REPORT, "同步角色权限")
    result = sync_roles_job.delay(job.pk)
    # The task went to the broker, not in-process: it has an id and the job is still queued here.
    assert result.id

    finished = wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.SUCCEEDED).first())
    assert finished.message == "角色权限已同步"
    assert finished.started_at is not None and finished.finished_at >= finished.started_at
    assert set(Group.objects.values_list("name", flat=True)) == {"市医保局", "县区医保局", "卫健委", "医疗机构财务", "审计"}
    assert Group.objects.get(name="审计").permissions.filter(codename__startswith="change_").count() == 0
