"""The Celery door: a thin wrapper that runs the import service for a Job."""
import logging
import tempfile
from pathlib import Path

from celery import shared_task
from django.core.files import File

from settlement import jobs
from settlement.models import Job

from .errors import ImportRejected
from .services import import_file

logger = logging.getLogger(__name__)
SHOWN_IN_LOG = 200


# Idempotent, so acknowledged late and requeued when its pool process dies: the rows land in one
# transaction, so a killed import landed nothing, or (killed after that COMMIT) its job already says
# 已完成 and claim() leaves it; and landing the same rows again would change nothing anyway.
# claim() runs a job at most once more, and only when the process that held it is gone.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_import_job(job_id):
    if not jobs.claim(job_id):
        return  # cancelled before it started, already run, or still running elsewhere
    job = Job.objects.select_related("user").get(pk=job_id)
    params = job.params
    if job.user is None or not job.user.is_active:
        # Without its submitter the job would run with an operator's powers: refuse instead.
        jobs.finish(job_id, "提交人账号已不存在或已停用，导入未执行", failed=True)
        return
    with tempfile.TemporaryDirectory() as scratch:
        error_path = Path(scratch) / f"{Path(job.input_file.name).stem}.errors.xlsx"
        try:
            result = import_file(
                params["resource"], job.input_file.path, user=job.user, land_good_rows=params.get("land_good_rows", False),
                job_id=job_id, error_path=error_path,
            )
        except jobs.JobStopped:
            return  # cancelled (or swept) meanwhile: the job says so, and nothing landed
        except ImportRejected as exc:
            jobs.finish(job_id, exc.message, failed=True)
            return
        except Exception:
            logger.exception("import job %s failed", job_id)
            jobs.finish(job_id, "导入失败：系统内部错误，未导入任何数据。请联系管理员。", failed=True)
            raise
        for error in result.errors[:SHOWN_IN_LOG]:
            jobs.append_log(job_id, str(error))
        if result.bad_rows > SHOWN_IN_LOG:
            jobs.append_log(job_id, f"……共{result.bad_rows}行错误，完整清单见结果文件")
        if result.error_file:
            job = Job.objects.get(pk=job_id)
            with open(result.error_file, "rb") as handle:
                job.result_file.save(error_path.name, File(handle), save=False)
            Job.objects.filter(pk=job_id).update(result_file=job.result_file.name)
    jobs.finish(job_id, result.summary(), counts=result.counts, failed=not result.landed)
