"""A 20,000-row upload goes through a real Celery worker and reports progress on its Job."""
import pytest

from settlement.imports.resources import RESOURCES
from settlement.imports.services import submit_import
from settlement.models import Job, JobStatus, OutpatientClaim
from tests.settlement.test_import_support import city, write_xlsx  # noqa: F401
from tests.worker import wait_for

ROWS = 20_000


@pytest.mark.worker
@pytest.mark.slow
def test_large_upload_through_real_worker(city, celery_worker_process, make_user, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    user = make_user("hospital", "H33050200001")
    people = [city.p1.id_number, city.p2.id_number]
    rows = [
        [f"MZ{i:06d}", people[i % 2], "H33050200001" if i % 3 else "H33050200002", f"2024-{1 + i % 12:02d}-15",
         "普通门诊", "", "10.50", "7.25", "3.25", "否"]
        for i in range(ROWS)
    ]
    path = write_xlsx(tmp_path / "claims.xlsx", RESOURCES["outpatient_claims"].headers, rows)
    upload = SimpleUploadedFile("claims.xlsx", path.read_bytes())
    job = submit_import("outpatient_claims", upload, user)

    seen = set()

    def finished():
        current = Job.objects.get(pk=job.pk)
        seen.add((current.status, current.progress_done))
        # 已完成 comes in the landing transaction; the summary and counts follow just after it.
        return current if current.is_finished and current.counts else None

    done = wait_for(finished, timeout=240, interval=0.05)
    assert done.status == JobStatus.SUCCEEDED, (done.message, done.log)
    assert (done.progress_total, done.progress_done) == (ROWS, ROWS)
    assert done.counts == {"rows": ROWS, "created": ROWS, "updated": 0, "unchanged": 0, "bad_rows": 0}
    assert "开始校验：约20000行" in done.log and "校验完成，正在写入数据库（20000行）" in done.log
    assert done.task_id and done.started_at <= done.finished_at
    assert OutpatientClaim.objects.count() == ROWS and OutpatientClaim.history.count() == ROWS
    # Σ fund_paid = 20,000 × 7.25 worked out by hand.
    from django.db.models import Sum

    assert str(OutpatientClaim.objects.aggregate(total=Sum("fund_paid"))["total"]) == "145000.00"
    assert OutpatientClaim.objects.filter(institution=city.b).count() == 6667  # i % 3 == 0 for 0..19999
