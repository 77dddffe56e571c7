"""End to end through a real Celery worker: ORM data → settle (one task per unit) → exported xlsx."""
from decimal import Decimal

import pytest
from django.core.management import call_command
from openpyxl import load_workbook

from settlement.engine.models import RunStatus, RunUnit, SettlementRun
from settlement.engine.services import start_run
from settlement.engine.simulation import start_simulation
from settlement.engine.simulation_models import Simulation, SimulationStatus
from settlement.models import Assessment, Job, JobKind, JobStatus
from tests.settlement.engine_data import policy
from tests.settlement.test_engine_runs import build_two_alliances
from tests.worker import wait_for

D = Decimal


@pytest.mark.worker
def test_capitation_settles_in_a_real_worker_and_exports(celery_worker_process, tmp_path):
    build_two_alliances()
    policy()
    # B's overspend share falls by 5 points: 80% of 500.00 = 400.00 refunded, fund bears 100.00
    Assessment.objects.create(year=2025, unit_code="YGT-B", score=D("96"), overspend_reduction=D("5"))

    run = start_run("capitation", 2025)
    # Sent to the broker, not computed here: the run is still computing when start_run returns.
    assert run.status == RunStatus.COMPUTING

    done = wait_for(lambda: SettlementRun.objects.filter(pk=run.pk, status__in=[RunStatus.COMPUTED, RunStatus.FAILED]).first(),
                    timeout=90, message="结算任务未在90秒内完成")
    assert done.status == RunStatus.COMPUTED, done.failure_reason
    assert (done.units_total, done.units_done) == (2, 2)
    assert RunUnit.objects.filter(run=done, done=True).count() == 2
    job = Job.objects.get(pk=done.job_id)
    assert job.status == JobStatus.SUCCEEDED and job.progress_done == 2

    out = tmp_path / "capitation-2025.xlsx"
    call_command("export_settlement", "--year", "2025", "--scheme", "capitation", "--output", str(out))
    rows = [[cell.value for cell in row] for row in load_workbook(out).active.iter_rows()]
    assert rows[0][:11] == ["单位编码", "单位名称", "预算额度", "实际支出", "结余超支", "单位分担留用", "基金分担留用",
                            "应得金额", "已拨付", "违规扣款", "年终清算金额"]
    by_code = {row[0]: [D(str(v)) for v in row[2:11]] for row in rows[1:]}
    # A: Q 1,800.00, A 800.00, S 1,000.00, 85% = 850.00, fund 150.00, E 1,650.00, paid 800.00 → +850.00
    assert by_code["YGT-A"] == [D("1800.00"), D("800.00"), D("1000.00"), D("850.00"), D("150.00"),
                                D("1650.00"), D("800.00"), D("0.00"), D("850.00")]
    # B: Q 2,400.00, A 2,900.00, S −500.00, 80% = −400.00, fund −100.00, E 2,500.00, paid 2,900.00 → −400.00
    assert by_code["YGT-B"] == [D("2400.00"), D("2900.00"), D("-500.00"), D("-400.00"), D("-100.00"),
                                D("2500.00"), D("2900.00"), D("0.00"), D("-400.00")]


@pytest.mark.worker
def test_a_simulation_runs_in_a_real_worker_with_its_job(celery_worker_process):
    build_two_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    simulation = start_simulation(run, {"retention": "0.80"})
    assert simulation.status == SimulationStatus.QUEUED  # sent to the broker, not computed here
    done = wait_for(lambda: Simulation.objects.filter(
        pk=simulation.pk, status__in=[SimulationStatus.COMPUTED, SimulationStatus.FAILED]).first(),
        timeout=90, message="模拟任务未在90秒内完成")
    assert done.status == SimulationStatus.COMPUTED, done.failure_reason
    job = Job.objects.get(pk=done.job_id)
    assert (job.kind, job.status, job.progress_total) == (JobKind.SIMULATION, JobStatus.SUCCEEDED, 2)
    # A: 1,000.00 × 80% = 800.00 instead of 850.00
    assert done.units.get(unit_code="YGT-A").amount == D("800.00")
