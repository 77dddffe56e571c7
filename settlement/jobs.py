"""Creating, running and reporting on background jobs, and noticing the ones whose worker died.

A worker killed hard (OOM killer, power, `kill -9`) leaves its jobs 运行中 and its runs 计算中; its
unacknowledged messages come back only after the broker's visibility timeout. So a job records the
Celery worker (node name) and process executing it, and the worker's main process beats for the
jobs its processes hold (`JOB_HEARTBEAT_SECONDS`). `sweep_stale_jobs` marks a held job 失败 with a
Chinese reason when its worker is known to be gone:

* at worker start, before it consumes anything: every job still held by a worker of the same node
  name is an earlier incarnation's (two live workers never share one name);
* any held job without a beat for `JOB_STALE_SECONDS` (a host that did not come back). Every
  running worker sweeps for these once per beat, and the import job page does so for its job when
  it finds the beat stale, so even with every worker down a user sees the truth.

Beats come from a thread of the worker's main process, not from progress: a gather's one long
query, an import's landing, a lock wait all look alive, as they are. Only holding matters: a run
whose unit tasks are merely waiting in the queue is held by nobody and is never swept.
"""
import datetime
import logging
import os
import threading

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from alliances.scope import scope_for

from .models import Job, JobKind, JobStatus

log = logging.getLogger(__name__)

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobStopped(Exception):
    """The job was cancelled, or declared dead by the sweep, while its task still ran."""


def create_job(kind, title, user=None, params=None, input_file=None, **fields):
    """Create a queued job carrying the submitter's scope."""
    scope = scope_for(user) if user is not None else None
    region_id = institution_id = None
    if scope is not None and scope.role and not scope.sees_all:
        if scope.is_regional:
            region_id = next(iter(scope.region_ids), None)
        elif scope.is_hospital:
            from alliances.models import UserScope

            profile = UserScope.objects.select_related("institution").get(user=user)
            institution_id = profile.institution_id
            region_id = profile.institution.county_id
    job = Job(
        kind=kind, title=title, user=user if user is not None and user.pk else None, params=params or {},
        region_id=region_id, institution_id=institution_id, **fields,
    )
    if input_file is not None:
        job.input_file.save(getattr(input_file, "name", "upload"), input_file, save=False)
    job.save()
    return job


def enqueue(job, task, *args):
    """Send `task(job.pk, *args)` to the workers once the job row is committed."""

    def send():
        result = task.delay(job.pk, *args)
        if result is not None and getattr(result, "id", None):
            Job.objects.filter(pk=job.pk, task_id="").update(task_id=result.id)

    transaction.on_commit(send)


def current_worker():
    """(node name, pid) of the Celery worker process executing the current task, else ("", None).

    In-process execution (no broker, `--sync`, tests) has no worker to lose: its jobs are never swept.
    """
    from celery import current_task

    request = getattr(current_task, "request", None) if current_task else None
    if request is None or request.is_eager or not request.hostname:
        return "", None
    return request.hostname, os.getpid()


def _held_by_me():
    worker, pid = current_worker()
    return {"worker": worker, "worker_pid": pid, "heartbeat_at": Now() if worker else None}


def start(job_id, total=0):
    Job.objects.filter(pk=job_id).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), progress_total=total, progress_done=0, **_held_by_me(),
    )


def claim(job_id):
    """Start a queued job in this process; False when it must not run here.

    A job is run once: a redelivered message finds it running, finished, cancelled or swept and
    leaves it alone, except one requeued because the pool process running it died (acks_late with
    reject_on_worker_lost) whose recorded process of this same worker is gone: that one is taken over.
    """
    fields = {"status": JobStatus.RUNNING, "started_at": timezone.now(), "progress_total": 0, "progress_done": 0,
              **_held_by_me()}
    jobs = Job.objects.filter(pk=job_id)
    if jobs.filter(status=JobStatus.QUEUED).update(**fields):
        return True
    worker, pid = current_worker()
    if not worker:
        return False
    held = jobs.filter(status=JobStatus.RUNNING, worker=worker).values_list("worker_pid", flat=True).first()
    if not held or held == pid or process_alive(held):
        return False
    if jobs.filter(status=JobStatus.RUNNING, worker=worker, worker_pid=held).update(**fields):
        append_log(job_id, "执行该任务的后台进程已中断，重新开始执行")
        return True
    return False


def hold(job_id):
    """This process works on the job now (a settlement run's gather or one of its unit tasks)."""
    worker, pid = current_worker()
    if worker and job_id:
        Job.objects.filter(pk=job_id, status__in=ACTIVE).update(worker=worker, worker_pid=pid, heartbeat_at=Now())


def release(job_id):
    """This process is done with the job; the next unit task, wherever it runs, holds it again."""
    worker, pid = current_worker()
    if worker and job_id:
        Job.objects.filter(pk=job_id, worker=worker, worker_pid=pid).update(worker="", worker_pid=None)


def reopen(job_id, status=JobStatus.QUEUED, total=0, done=0):
    """A resumed run's job: active again, held by nobody until a task takes it."""
    Job.objects.filter(pk=job_id).update(
        status=status, finished_at=None, message="", worker="", worker_pid=None, heartbeat_at=None,
        progress_total=total, progress_done=done,
    )


def set_total(job_id, total):
    Job.objects.filter(pk=job_id).update(progress_total=total)


def advance(job_id, done):
    Job.objects.filter(pk=job_id).update(progress_done=done)


def checkpoint(job_id, done):
    """Record progress, or raise JobStopped if the job was cancelled or declared dead meanwhile."""
    if not Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(progress_done=done):
        raise JobStopped()


def append_log(job_id, line):
    stamp = timezone.localtime().strftime("%H:%M:%S")
    job = Job.objects.only("log").get(pk=job_id)
    Job.objects.filter(pk=job_id).update(log=f"{job.log}{stamp} {line}\n")


def finish(job_id, message="", counts=None, failed=False):
    updates = {
        "status": JobStatus.FAILED if failed else JobStatus.SUCCEEDED,
        "finished_at": timezone.now(),
        "message": message,
    }
    if counts is not None:
        updates["counts"] = counts
    if not failed:
        updates["progress_done"] = F("progress_total")
    # A cancelled or swept job keeps its ending; an import whose data committed (marked 已完成 in
    # that very transaction) only gets its summary, never a 失败 over data that landed.
    allowed = [*ACTIVE] if failed else [*ACTIVE, JobStatus.SUCCEEDED]
    Job.objects.filter(pk=job_id, status__in=allowed).update(**updates)


def mark_landed(cursor, job_id):
    """In an import's landing transaction, just before its COMMIT: 已完成, or JobStopped if cancelled.

    The UPDATE takes the job row's lock, so a cancel or a sweep either came first (nothing is
    updated, the import rolls back and lands nothing) or waits for the COMMIT and finds the job done.
    """
    table = cursor.db.ops.quote_name(Job._meta.db_table)
    cursor.execute(
        f"UPDATE {table} SET status = %s, finished_at = %s, message = %s WHERE id = %s AND status = %s",
        [JobStatus.SUCCEEDED, timezone.now(), "数据已写入，正在生成结果……", job_id, JobStatus.RUNNING],
    )
    if cursor.rowcount != 1:
        raise JobStopped()


# --- noticing dead workers ------------------------------------------------------------------


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _duration(seconds):
    return f"{seconds // 60}分钟" if seconds % 60 == 0 else f"{seconds}秒"


def _dead_reason(job_kind, why):
    what = {JobKind.IMPORT: "，请点击“重新导入”", JobKind.SETTLEMENT: "，请点击“继续未完成的计算”"}.get(job_kind, "")
    return f"后台进程已中断（{why}）{what}"


def sweep_stale_jobs(restarted_worker=None, job_ids=None):
    """Mark 失败 the active jobs held by a worker that is gone; returns their ids.

    `restarted_worker`: the node name of a worker that is starting and has consumed nothing yet,
    so every job still held under that name belongs to a dead incarnation. Otherwise only jobs
    whose beat is older than JOB_STALE_SECONDS. A run's job takes its run along (失败, resumable).
    """
    limit = settings.JOB_STALE_SECONDS
    stale = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=Now() - datetime.timedelta(seconds=limit))
    if restarted_worker:
        stale |= Q(worker=restarted_worker)
    candidates = Job.objects.filter(stale, status__in=ACTIVE).exclude(worker="")
    if job_ids is not None:
        candidates = candidates.filter(pk__in=list(job_ids))
    swept = []
    for job in candidates.only("pk", "kind", "worker", "worker_pid", "heartbeat_at"):
        if job.worker == restarted_worker:
            why = f"{job.worker}已重启，任务未完成"
        else:
            why = f"{job.worker}已超过{_duration(limit)}没有响应"
        if _declare_dead(job, _dead_reason(job.kind, why)):
            swept.append(job.pk)
    return swept


def sweep_if_stale(job):
    """For a page showing `job`: sweep it if its beat is stale (with every worker down, nobody else
    would), and return it as it now stands."""
    if job.status not in ACTIVE or not job.worker:
        return job
    limit = datetime.timedelta(seconds=settings.JOB_STALE_SECONDS)
    # Only a cheap first look on this clock; the sweep decides on the database's.
    if job.heartbeat_at is None or job.heartbeat_at < timezone.now() - limit:
        if sweep_stale_jobs(job_ids=[job.pk]):
            job.refresh_from_db()
    return job


def _declare_dead(job, reason):
    from settlement.engine.models import RunStatus, SettlementRun
    from settlement.engine.services import fail_run

    with transaction.atomic():
        # The run row first, as every run transaction locks it before the job's.
        run_ids = list(
            SettlementRun.objects.select_for_update().filter(job_id=job.pk, status=RunStatus.COMPUTING)
            .values_list("pk", flat=True)
        )
        # Still held as we read it: a beat or a new holder since means it is alive after all.
        if not Job.objects.filter(
            pk=job.pk, status__in=ACTIVE, worker=job.worker, worker_pid=job.worker_pid, heartbeat_at=job.heartbeat_at,
        ).update(status=JobStatus.FAILED, finished_at=timezone.now(), message=reason):
            return False
        for run_id in run_ids:
            fail_run(run_id, reason)
    log.warning("job %s swept: %s", job.pk, reason)
    return True


def beat(worker):
    """Show that `worker` is alive for the jobs its processes hold; a dead pool process gets no beat."""
    held = Job.objects.filter(worker=worker, status__in=ACTIVE).values_list("pk", "worker_pid")
    alive = [pk for pk, pid in held if pid is None or process_alive(pid)]
    if alive:
        Job.objects.filter(pk__in=alive, worker=worker).update(heartbeat_at=Now())


def worker_starting(worker):
    """At worker start, before it consumes a message: sweep its own dead incarnation and stale jobs."""
    try:
        sweep_stale_jobs(restarted_worker=worker)
    except Exception:  # a sweep must never keep a worker from starting
        log.exception("sweeping stale jobs at the start of %s failed", worker)
    finally:
        # The pool forks after this: no child may inherit this connection.
        connections.close_all()


class _Monitor(threading.Thread):
    def __init__(self, worker):
        super().__init__(name="job-heartbeat", daemon=True)
        self.worker = worker
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(settings.JOB_HEARTBEAT_SECONDS):
            try:
                beat(self.worker)
                sweep_stale_jobs()
            except Exception:
                log.exception("job heartbeat of %s failed", self.worker)
            finally:
                # Closed between beats: a pool process forked meanwhile inherits no open connection.
                connections.close_all()


_monitor = None


def start_monitor(worker):
    global _monitor
    if _monitor is None or not _monitor.is_alive():
        _monitor = _Monitor(worker)
        _monitor.start()


def stop_monitor():
    if _monitor is not None:
        _monitor.stopping.set()
