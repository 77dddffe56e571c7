"""Jobs of a dead worker are marked 失败 with a Chinese reason; a live worker's are left alone."""
import datetime
import os
import subprocess

import pytest
from django.utils import timezone

from settlement import jobs
from settlement.engine.models import RunStatus, SettlementRun
from settlement.engine.services import resume_run, start_run
from settlement.models import Job, JobKind, JobStatus
from tests.settlement.engine_data import policy
from tests.settlement.test_engine_runs import EXPECTED, build_two_alliances, figures


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def held(job, worker, pid, beat_age_seconds):
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, worker=worker, worker_pid=pid,
        heartbeat_at=timezone.now() - datetime.timedelta(seconds=beat_age_seconds),
    )


def import_job(title):
    return jobs.create_job(JobKind.IMPORT, title, params={"resource": "outpatient_claims"})


@pytest.mark.django_db
def test_sweep_fails_the_run_and_import_of_a_dead_worker_and_leaves_live_ones(settings, django_capture_on_commit_callbacks):
    settings.JOB_STALE_SECONDS = 300
    build_two_alliances()
    policy()
    with django_capture_on_commit_callbacks(execute=False):
        run = start_run("capitation", 2025)  # its gather is held by a worker that then died
    run_job = Job.objects.get(pk=run.job_id)
    held(run_job, "w1@host-a", dead_pid(), 5)
    restarted_import = import_job("导入门诊结算记录：a.xlsx")
    held(restarted_import, "w1@host-a", dead_pid(), 5)
    silent_import = import_job("导入门诊结算记录：b.xlsx")
    held(silent_import, "w2@host-b", 4321, 301)  # host-b stopped beating 301 s ago, over the 300 s limit
    live_import = import_job("导入门诊结算记录：c.xlsx")
    held(live_import, "w3@host-c", 4321, 299)
    in_process = import_job("导入门诊结算记录：d.xlsx")
    Job.objects.filter(pk=in_process.pk).update(status=JobStatus.RUNNING, heartbeat_at=None)  # no worker: never swept

    swept = jobs.sweep_stale_jobs(restarted_worker="w1@host-a")

    assert sorted(swept) == sorted([run_job.pk, restarted_import.pk, silent_import.pk])
    run.refresh_from_db()
    restart_reason = "后台进程已中断（w1@host-a已重启，任务未完成），请点击“继续未完成的计算”"
    assert (run.status, run.failure_reason) == (RunStatus.FAILED, restart_reason)
    assert Job.objects.get(pk=run_job.pk).status == JobStatus.FAILED
    assert Job.objects.get(pk=run_job.pk).message == restart_reason
    assert Job.objects.get(pk=restarted_import.pk).message == "后台进程已中断（w1@host-a已重启，任务未完成），请点击“重新导入”"
    silent = Job.objects.get(pk=silent_import.pk)
    assert (silent.status, silent.message) == (JobStatus.FAILED, "后台进程已中断（w2@host-b已超过5分钟没有响应），请点击“重新导入”")
    assert silent.finished_at is not None
    for job in (live_import, in_process):
        assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    # A second sweep finds nothing more.
    assert jobs.sweep_stale_jobs(restarted_worker="w1@host-a") == []

    # The failed run resumes: its gather never stored anything, so it gathers again.
    resumed = resume_run(run, sync=True)
    assert resumed.status == RunStatus.COMPUTED and figures(resumed) == EXPECTED


@pytest.mark.django_db
def test_a_worker_beats_only_for_jobs_whose_process_is_alive(settings):
    settings.JOB_STALE_SECONDS = 300
    alive = import_job("导入门诊结算记录：alive.xlsx")
    held(alive, "w4@host", os.getpid(), 600)
    dead = import_job("导入门诊结算记录：dead.xlsx")
    held(dead, "w4@host", dead_pid(), 600)
    other = import_job("导入门诊结算记录：other.xlsx")
    held(other, "w5@host", os.getpid(), 600)

    jobs.beat("w4@host")

    now = timezone.now()
    assert now - Job.objects.get(pk=alive.pk).heartbeat_at < datetime.timedelta(seconds=60)
    for job in (dead, other):
        assert now - Job.objects.get(pk=job.pk).heartbeat_at >= datetime.timedelta(seconds=600)
    assert sorted(jobs.sweep_stale_jobs()) == sorted([dead.pk, other.pk])
    assert Job.objects.get(pk=alive.pk).status == JobStatus.RUNNING


@pytest.mark.django_db
def test_a_run_whose_units_wait_in_the_queue_is_held_by_nobody_and_never_swept(settings, django_capture_on_commit_callbacks):
    settings.JOB_STALE_SECONDS = 300
    build_two_alliances()
    policy()
    with django_capture_on_commit_callbacks(execute=False):
        run = start_run("capitation", 2025)
    from settlement.engine import services

    with django_capture_on_commit_callbacks(execute=False):
        services.gather_run(run.pk, computation=run.computation)  # the unit tasks wait in the queue
    Job.objects.filter(pk=run.job_id).update(heartbeat_at=timezone.now() - datetime.timedelta(hours=3))
    assert jobs.sweep_stale_jobs(restarted_worker="w1@host-a") == []
    assert SettlementRun.objects.get(pk=run.pk).status == RunStatus.COMPUTING
