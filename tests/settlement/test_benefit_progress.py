"""应付统筹 as a background job (issue 14): the job page shows each stage while the computation runs,
committed on a connection of its own, while readers keep seeing the previous figures until the
computation's one transaction commits (all or nothing)."""
import concurrent.futures
from decimal import Decimal as D

import pytest
from django.db import connection, connections

from settlement.benefits.selectors import differing
from settlement.benefits.services import STAGES, start_compute
from settlement.models import Job
from tests.settlement import benefit_builders as b
from tests.settlement.benefit_builders import YEAR, day

pytestmark = pytest.mark.django_db(transaction=True)


def _elsewhere(read):
    """`read()` on another connection (a thread's): what every other reader sees now."""
    def work():
        try:
            return read()
        finally:
            connections.close_all()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def test_progress_is_visible_during_the_computation_and_figures_never_half_replaced():
    place = b.place()
    b.approved_table()
    person = place["resident"]
    # (1,200 − 200) × 60% = 600.00, reported 650.00: +50.00
    over = b.claim(person, place["二级"], day(1, 6), "1200.00", fund="650.00", serial="MZ-OVER")
    # 200 × 80% = 160.00, reported 100.00: −60.00
    b.claim(person, place["基层"], day(1, 5), "200.00", fund="100.00", serial="MZ-UNDER")
    first = start_compute(YEAR, sync=True)
    assert first.status == "succeeded", first.message
    assert {f.serial for f in differing(YEAR)} == {"MZ-OVER", "MZ-UNDER"}

    # Reported right now: the next computation finds only MZ-UNDER.
    over.fund_paid, over.personal_paid = D("600.00"), D("600.00")
    over.save()
    seen = []

    def observe(execute, sql, params, many, context):
        # Just before the stays are figured, the claims' figures are already replaced inside the transaction.
        if sql.startswith("CREATE TEMP TABLE benefit_cases"):
            job = Job.objects.filter(kind="benefits").order_by("-pk")
            seen.append(_elsewhere(lambda: (
                job.values_list("progress_done", "progress_total", "log")[0],
                sorted(f.serial for f in differing(YEAR)),
            )))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(observe):
        second = start_compute(YEAR, sync=True)
    assert second.status == "succeeded", second.message
    [((done, total, log), serials)] = seen
    # stages 1–3 (rule map and flags, the two outpatient statements) committed and logged meanwhile
    assert (done, total) == (3, len(STAGES)) == (3, 5)
    assert "第3/5步完成" in log and "第4/5步" not in log
    # readers still see the first computation's figures, not half of the second's
    assert serials == ["MZ-OVER", "MZ-UNDER"]
    assert sorted(f.serial for f in differing(YEAR)) == ["MZ-UNDER"]
    second.refresh_from_db()
    assert (second.progress_done, second.progress_total) == (5, 5) and "第5/5步完成" in second.log


def test_a_cancelled_job_lands_nothing():
    place = b.place()
    b.approved_table()
    person = place["resident"]
    b.claim(person, place["二级"], day(1, 6), "1200.00", fund="650.00", serial="MZ-OVER")
    cancelled = []

    def cancel(execute, sql, params, many, context):
        if sql.startswith("CREATE TEMP TABLE benefit_cases") and not cancelled:
            cancelled.append(_elsewhere(lambda: Job.objects.filter(kind="benefits").update(status="cancelled")))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(cancel):
        job = start_compute(YEAR, sync=True)
    assert cancelled == [1] and job.status == "cancelled"
    assert not differing(YEAR).exists()  # the figures written before the cancel were rolled back
