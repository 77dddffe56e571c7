"""A real worker killed (main process and pool child) mid-task, and what the portal makes of it."""
import os
import re
import signal
from decimal import Decimal

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from settlement.engine.models import RunStatus, RunUnit, SettlementRun, UnitResult
from settlement.engine.services import start_run
from settlement.models import Job, JobStatus, OutpatientClaim, Payment
from tests.settlement.test_engine_runs import EXPECTED, figures
from tests.settlement.test_import_support import city, model_counts, write_xlsx  # noqa: F401
from tests.settlement.test_run_computations import WITH_PAYMENT, with_a_payment
from tests.worker import _database_url, wait_for

from .test_import_admin import CLAIM_HEADERS

D = Decimal


def waiting_backends(wait_event_type, wait_event=None):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = %s"
            " AND (%s::text IS NULL OR wait_event = %s)",
            [wait_event_type, wait_event, wait_event],
        )
        return cursor.fetchone()[0]


def everything(run):
    return {r.unit_code: (r.quota, r.actual, r.surplus, r.unit_part, r.fund_part, r.entitled, r.paid, r.amount, r.details)
            for r in UnitResult.objects.filter(run=run)}


@pytest.mark.worker
def test_worker_killed_during_the_gather_then_resumed_settles_like_a_clean_sync_run(worker_factory, client, make_user):
    with_a_payment()
    first = start_run("capitation", 2025, sync=True)
    assert figures(first) == WITH_PAYMENT
    Payment.objects.all().delete()  # deleted while no worker runs

    worker = worker_factory(pool="prefork", JOB_HEARTBEAT_SECONDS="1")
    # The claims table locked: the gather blocks on it, deterministically, in the pool child.
    blocker = psycopg.connect(_database_url())
    try:
        blocker.execute(f"LOCK TABLE {OutpatientClaim._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        run = start_run("capitation", 2025)
        assert run.status == RunStatus.COMPUTING
        wait_for(lambda: waiting_backends("Lock"), timeout=60, message="汇总未在60秒内开始")
        job = Job.objects.get(pk=run.job_id)
        assert (job.status, job.worker) == (JobStatus.RUNNING, worker.nodename)
        assert job.worker_pid not in (None, worker.proc.pid)  # the pool child runs it, not the main process
        # The worker's main process beats for it while the child waits on the lock.
        wait_for(lambda: Job.objects.get(pk=job.pk).heartbeat_at > job.heartbeat_at, timeout=10,
                 message="后台进程没有心跳")

        worker.kill()
        worker.start()  # the same node name, as systemd restarts it
        # Swept before the new worker consumed anything.
        run.refresh_from_db()
        reason = f"后台进程已中断（{worker.nodename}已重启，任务未完成），请点击“继续未完成的计算”"
        assert (run.status, run.failure_reason) == (RunStatus.FAILED, reason)
        assert Job.objects.get(pk=run.job_id).status == JobStatus.FAILED
    finally:
        blocker.rollback()
        blocker.close()

    client.force_login(make_user("city"))
    client.post(reverse("admin:settlement_settlementrun_changelist"), {"action": "resume", "_selected_action": [run.pk]})
    done = wait_for(lambda: SettlementRun.objects.filter(pk=run.pk, status__in=[RunStatus.COMPUTED, RunStatus.FAILED]).first(),
                    timeout=90, message="继续计算未在90秒内完成")
    assert done.status == RunStatus.COMPUTED, done.failure_reason
    # This computation's own two units, not the previous computation's inputs.
    assert (done.units_total, done.units_done) == (2, 2)
    assert set(RunUnit.objects.filter(run=done).values_list("computation", flat=True)) == {done.computation}
    assert figures(done) == EXPECTED
    # A's 已拨付 is the first run's less exactly the deleted payment; B is untouched.
    assert figures(done)["YGT-A"][6] == WITH_PAYMENT["YGT-A"][6] - D("100.00")
    assert Job.objects.get(pk=done.job_id).worker == ""  # the last unit task let go of it

    resumed = everything(done)
    call_command("settle", "capitation", "--year", "2025", "--sync")
    clean = SettlementRun.objects.get(pk=run.pk)
    assert clean.status == RunStatus.COMPUTED and clean.computation == done.computation + 1
    assert everything(clean) == resumed


@pytest.mark.worker
def test_cancelling_a_running_import_lands_nothing(city, worker_factory, client, make_user, tmp_path):
    owner = make_user("hospital", "H33050200001")
    worker = worker_factory()
    rows = [[f"MZ{i}", city.p1.id_number, "H33050200001", "2024-01-05", "普通门诊", "", "100", "60", "40", "否"]
            for i in range(3)]
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, rows)
    before = model_counts(OutpatientClaim)
    # The import's landing transaction starts with this advisory lock: held here, the file is
    # validated and the landing waits.
    blocker = psycopg.connect(_database_url(), autocommit=True)
    try:
        blocker.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"import:{OutpatientClaim._meta.db_table}"])
        client.force_login(owner)
        with open(path, "rb") as handle:
            client.post(reverse("admin:settlement_outpatientclaim_import"), {"file": handle})
        job = Job.objects.get()
        wait_for(lambda: waiting_backends("Lock", "advisory"), timeout=60, message="导入未在60秒内进入写入阶段")
        assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
        client.post(reverse("admin:settlement_outpatientclaim_import_job_cancel", args=[job.pk]))
        assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    finally:
        blocker.execute("SELECT pg_advisory_unlock_all()")
        blocker.close()

    # The landing goes on once unblocked, finds the job cancelled at its last step and rolls back.
    wait_for(lambda: re.search(r"run_import_job\[[^\]]+\] succeeded", worker.log()), timeout=60,
             message="导入任务未在60秒内结束")
    job.refresh_from_db()
    assert (job.status, job.message) == (JobStatus.CANCELLED, "导入已取消，未导入任何数据。")
    assert model_counts(OutpatientClaim) == before == [(0, 0)]
    status = client.get(reverse("admin:settlement_outpatientclaim_import_job_status", args=[job.pk])).json()
    assert (status["status_display"], status["finished"], status["can_retry"]) == ("已取消", True, True)


@pytest.mark.worker
def test_an_import_whose_pool_process_died_is_requeued_and_taken_over(city, worker_factory, client, make_user, tmp_path):
    owner = make_user("hospital", "H33050200001")
    worker = worker_factory(pool="prefork")
    rows = [[f"MZ{i}", city.p1.id_number, "H33050200001", "2024-01-05", "普通门诊", "", "100", "60", "40", "否"]
            for i in range(3)]
    path = write_xlsx(tmp_path / "claims.xlsx", CLAIM_HEADERS, rows)
    blocker = psycopg.connect(_database_url(), autocommit=True)
    try:
        blocker.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"import:{OutpatientClaim._meta.db_table}"])
        client.force_login(owner)
        with open(path, "rb") as handle:
            client.post(reverse("admin:settlement_outpatientclaim_import"), {"file": handle})
        job = Job.objects.get()
        wait_for(lambda: waiting_backends("Lock", "advisory"), timeout=60, message="导入未在60秒内进入写入阶段")
        first_pid = Job.objects.get(pk=job.pk).worker_pid
        os.kill(first_pid, signal.SIGKILL)  # the OOM killer takes the pool child; the main process lives
        # Requeued at once (reject_on_worker_lost) and claimed by the new child from the dead one.
        wait_for(lambda: Job.objects.filter(pk=job.pk).exclude(worker_pid=first_pid).exists(), timeout=60,
                 message="导入任务未被重新执行")
        assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    finally:
        blocker.execute("SELECT pg_advisory_unlock_all()")
        blocker.close()
    # 已完成 comes in the landing transaction; the summary and its counts follow just after it.
    done = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED])
                    .exclude(status=JobStatus.SUCCEEDED, counts={}).first(),
                    timeout=60, message="导入任务未在60秒内结束")
    assert done.status == JobStatus.SUCCEEDED, done.message
    assert "执行该任务的后台进程已中断，重新开始执行" in done.log
    assert done.counts == {"rows": 3, "created": 3, "updated": 0, "unchanged": 0, "bad_rows": 0}
    # Landed once: three claims, three '+' history rows.
    assert model_counts(OutpatientClaim) == [(3, 3)]
