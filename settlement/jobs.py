"""Creating, running and reporting on background jobs."""
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alliances.scope import scope_for

from .models import Job, JobStatus


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


def start(job_id, total=0):
    Job.objects.filter(pk=job_id).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), progress_total=total, progress_done=0,
    )


def set_total(job_id, total):
    Job.objects.filter(pk=job_id).update(progress_total=total)


def advance(job_id, done):
    Job.objects.filter(pk=job_id).update(progress_done=done)


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
    Job.objects.filter(pk=job_id).update(**updates)
