"""The one import path behind the three doors (management command, admin upload, Celery task)."""
import datetime
import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from settlement import jobs
from settlement.kpi_aggregates.services import KpiDelta

from .errors import ImportRejected
from .landing import make_lander
from .readers import open_table
from .resources import get_resource, lookups
from .validation import ImportContext, validate

ERROR_COLUMN = "错误原因"
MAX_ERRORS_KEPT = 100_000  # every bad row still goes to the error workbook; the list is for display


@dataclass
class ImportResult:
    resource: str
    title: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_rows: int = 0
    errors: list = field(default_factory=list)
    landed: bool = False
    error_file: Path | None = None

    @property
    def good_rows(self):
        return self.rows - self.bad_rows

    @property
    def counts(self):
        return {
            "rows": self.rows, "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
            "bad_rows": self.bad_rows,
        }

    def summary(self):
        if not self.landed:
            return f"{self.title}：共{self.rows}行，其中{self.bad_rows}行有错误，未导入任何数据。请修改后重新上传，或选择“只导入正确的行”。"
        text = f"{self.title}：共{self.rows}行，新增{self.created}行，更新{self.updated}行，未变化{self.unchanged}行"
        if self.bad_rows:
            text += f"；{self.bad_rows}行有错误未导入（见错误清单）"
        return text + "。"


class ErrorWorkbook:
    """Bad rows with their original cells plus an error column, written as they are found."""

    def __init__(self, headers):
        from openpyxl import Workbook

        self.workbook = Workbook(write_only=True)
        self.sheet = self.workbook.create_sheet("错误行")
        self.sheet.append([*headers, ERROR_COLUMN])
        self.width = len(headers)

    def add(self, cells, errors):
        row = [neutralise(cell) for cell in list(cells)[: self.width]]
        row += [None] * (self.width - len(row))
        row.append(neutralise("；".join(_error_text(error) for error in errors)))
        self.sheet.append(row)

    def save(self, path):
        self.workbook.save(path)


def _error_text(error):
    column = f"“{error.column}”" if error.column and not error.reason_names_column else ""
    return f"{column}{error.reason}"


def neutralise(value):
    """Spreadsheet cells starting with = + - @ would run as formulas when opened (CSV/formula injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, datetime.timedelta | datetime.time):
        return str(value)
    return value


def check_permission(resource, user):
    if user is None:
        return
    if not (user.is_active and user.has_perm(resource.permission)):
        raise ImportRejected(f"您没有导入“{resource.title}”的权限")


def import_file(resource, path, user=None, land_good_rows=False, job_id=None, error_path=None) -> ImportResult:
    """Validate every row of `path` and land all of them, or none, or (on request) exactly the good ones.

    Raises ImportRejected for a file that cannot be read at all. Bad rows do not raise: they come
    back in the result, and with `error_path` as an xlsx of the original rows plus 错误原因.
    """
    spec = get_resource(resource)
    check_permission(spec, user)
    table = open_table(path)
    result = ImportResult(resource=spec.name, title=spec.title)
    ctx = ImportContext(spec, user, lookups())
    # A job's import commits only while the job still runs: cancelled (or declared dead) before the
    # last step, it lands nothing; the job turns 已完成 in the transaction that lands the rows.
    delta = KpiDelta(spec.model._meta.db_table)
    ctx.before_update = delta.subtract

    def before_commit(cursor):
        # Inside the landing transaction: the KPI aggregates change by what this file changed,
        # with the rows, or not at all.
        delta.add_landed(cursor, ctx.landed_at)
        delta.apply(cursor)
        if job_id:
            jobs.mark_landed(cursor, job_id)

    lander = make_lander(spec, ctx, before_commit=before_commit)
    workbook = None

    def reject(number, cells, errors):
        nonlocal workbook
        result.bad_rows += 1
        if len(result.errors) < MAX_ERRORS_KEPT:
            result.errors.extend(errors)
        if error_path is not None:
            if workbook is None:
                workbook = ErrorWorkbook(table.headers)
            workbook.add(cells, errors)

    def accept(values, number):
        # Once a bad row dooms an all-or-nothing import, the rest is only validated for the report.
        if result.bad_rows and not land_good_rows:
            return
        lander.add(values, number)

    def progress(done):
        if job_id:
            jobs.checkpoint(job_id, done)  # raises JobStopped once the job is cancelled

    if job_id:
        jobs.set_total(job_id, table.total)
        jobs.append_log(job_id, f"开始校验：约{table.total}行")
    try:
        with _few_collections():
            result.rows = validate(spec, table, ctx, accept, reject, progress)
        if result.bad_rows and not land_good_rows:
            lander.discard()
        else:
            if job_id:
                jobs.append_log(job_id, f"校验完成，正在写入数据库（{result.good_rows}行）")
            result.created, result.updated = lander.land()
            result.unchanged = result.good_rows - result.created - result.updated
            result.landed = True
    except BaseException:
        lander.discard()
        raise
    finally:
        rows = getattr(table.rows, "close", None)
        if rows:
            rows()  # closes the csv handle even when validation stopped early
    if workbook is not None:
        workbook.save(error_path)
        result.error_file = Path(error_path)
    return result


@contextmanager
def _few_collections():
    """Run the cyclic garbage collector rarely while a file is read.

    Every row makes a handful of short-lived dicts and tuples, which reference counting frees; but
    each 700 of them start a collection, and the older ones traverse every object of the process
    (Django, the lookups, the in-file key set). Measured on 1,000,000 claim rows that was a third of
    the validation time. Objects that exist before the import are frozen out of the collections,
    and young collections wait for 10,000 new objects instead of 700; cycles are still collected.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def submit_import(resource, upload, user, land_good_rows=False):
    """Queue an uploaded file as an import Job (the admin door); the worker runs `import_file`."""
    from django.conf import settings
    from django.db import transaction

    from config.uploads import too_large_message
    from settlement.models import Job, JobKind

    from .tasks import run_import_job

    spec = get_resource(resource)
    check_permission(spec, user)
    if getattr(upload, "refused", False) or upload.size > settings.IMPORT_MAX_FILE_BYTES:
        # Refused before saving: the job would refuse it anyway, after it had been copied to MEDIA.
        raise ImportRejected(too_large_message())
    job = None
    try:
        with transaction.atomic():
            job = jobs.create_job(
                JobKind.IMPORT, f"导入{spec.title}：{Path(upload.name).name}", user=user,
                params={"resource": spec.name, "land_good_rows": bool(land_good_rows)},
            )
            # Saved once the row exists, so whatever fails from here on knows which file to take back.
            job.input_file.save(Path(upload.name).name, upload)
            jobs.enqueue(job, run_import_job)
    except BaseException:
        # A rolled-back job leaves its file behind in MEDIA, owned by nothing and never shown.
        if job is not None and job.input_file and not Job.objects.filter(pk=job.pk).exists():
            job.input_file.delete(save=False)
        raise
    return job


# --- cancel and retry (the import job page) --------------------------------------------------


def may_manage_import(job, user):
    """The submitter or the city bureau may cancel or retry an import: the file holds their data."""
    from alliances.scope import Role, scope_for

    if user is None or not user.is_active:
        return False
    if user.is_superuser or (job.user_id is not None and job.user_id == user.pk):
        return True
    return scope_for(user).role == Role.CITY


def _require_manager(job, user, action):
    if not may_manage_import(job, user):
        raise ImportRejected(f"只有提交人或市医保局可以{action}该导入任务")


def can_cancel_import(job, user):
    from settlement.models import JobKind

    return job.kind == JobKind.IMPORT and job.status in jobs.ACTIVE and may_manage_import(job, user)


def can_retry_import(job, user):
    from settlement.models import JobKind, JobStatus

    return (job.kind == JobKind.IMPORT and job.status in (JobStatus.FAILED, JobStatus.CANCELLED)
            and not job.retries.exists() and may_manage_import(job, user))


def cancel_import(job, user):
    """Mark a queued or running import 已取消; its task stops at its next checkpoint and lands nothing."""
    from django.db import transaction
    from django.utils import timezone

    from settlement.models import Job, JobKind, JobStatus

    _require_manager(job, user, "取消")
    # One UPDATE on the job row: it waits for a landing transaction that holds the row (its last
    # step marks the job 已完成) and then finds nothing to cancel, so a cancelled import never lands.
    with transaction.atomic():
        cancelled = Job.objects.filter(pk=job.pk, kind=JobKind.IMPORT, status__in=jobs.ACTIVE).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), message="导入已取消，未导入任何数据。",
        )
    job.refresh_from_db()
    if not cancelled:
        raise ImportRejected(f"该导入任务当前为“{job.get_status_display()}”，不能取消")
    jobs.append_log(job.pk, f"{user.get_username()}取消了导入")
    job.refresh_from_db()
    return job


def retry_import(job, user):
    """Queue a failed or cancelled import again from its stored file with the same options.

    The retry is a new job (the old one keeps how it ended) that runs with the submitter's powers
    and scope, as the first attempt did, whoever asked for it.
    """
    from django.db import transaction

    from settlement.models import Job, JobKind, JobStatus

    from .tasks import run_import_job

    _require_manager(job, user, "重新导入")
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.kind != JobKind.IMPORT or job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise ImportRejected(f"只有失败或已取消的导入任务可以重新导入，该任务当前为“{job.get_status_display()}”")
        earlier = job.retries.order_by("pk").first()
        if earlier is not None:
            raise ImportRejected(f"该任务已重新导入过（任务{earlier.pk}），请在该任务页面查看")
        if job.user is None or not job.user.is_active:
            raise ImportRejected("提交人账号已不存在或已停用，不能重新导入")
        if not job.input_file or not job.input_file.storage.exists(job.input_file.name):
            raise ImportRejected("该任务的上传文件已不存在，请重新上传")
        retry = Job.objects.create(
            kind=job.kind, title=job.title, user=job.user, params=dict(job.params), region_id=job.region_id,
            institution_id=job.institution_id, input_file=job.input_file.name, retry_of=job,
        )
        jobs.append_log(retry.pk, f"{user.get_username()}重新导入任务{job.pk}的文件")
        jobs.enqueue(retry, run_import_job)
    return retry
