"""The benefit engine's writes (SPEC §6.8): approving a benefit table, and computing 应付统筹.

`compute_expected(year)` figures every outpatient claim (by visit date) and inpatient case (by
discharge date) of the year with the arithmetic of `arithmetic.py`, and replaces the year's stored
figures with the ones that differ from 统筹支付 by more than 0.01 元 or have no rule
(`UnmatchedFigure`, a few percent of a year); every other claim and case is 一致 in the
`BenefitFigure` view, and any one's derivation is re-derived on its page, one person-year by index.

* outpatient: one parallel statement per kind of rule — without deductible and limit a claim's figure
  is its own (no sort); with them the running sums in (visit date, serial) order — counting the
  claims and gathering the differing ones inside the workers; the person's county by subscript of a
  per-run array; the unsorted pass reads every claim as if unflagged and the few claims with a
  referral or relocation flag are figured again with theirs;
* inpatient: the deductible per stay less what a stay joined by a referral charged (also one of an
  earlier year), the limit per person-year in discharge order.

All of it in one transaction (readers see the previous figures until it commits); the job's stage is
committed beside it on a connection of its own. The same function is behind the admin action, the
Celery task and the demo (one code path).
"""
import concurrent.futures
import os
import uuid

from django.db import connection, connections, transaction
from django.db.models import Count
from django.utils import timezone

from alliances.models import Region
from alliances.scope import write_refusal
from settlement import jobs
from settlement.approval import Refused, approve, revise
from settlement.engine.services import check_year, policy_parameters, resolve_policy
from settlement.models import ApprovalStatus, JobKind, Scheme

from .checks import RuleRow, check_table, failures
from . import arithmetic
from .models import BenefitComputation, BenefitRule, BenefitTable, Outcome, UnmatchedTotal
from .params import BenefitParams


# --- benefit tables --------------------------------------------------------------------------


def rule_rows(year):
    return [
        RuleRow(*values) for values in BenefitRule.objects.filter(year=year).values_list(
            "insurance_type", "care_type", "level", "visit_type", "disease_prefix", "deductible", "ratio",
            "annual_limit",
        )
    ]


def benefit_params(year):
    """The year's approved `benefits` policy; without one, the FJ defaults are refused too (approve it first)."""
    return policy_parameters(resolve_policy(Scheme.BENEFITS, year))


def table_checks(year, params=None):
    """The FJ clause checks of the year's rows, for the admin and the approval alike."""
    return check_table(rule_rows(year), params or benefit_params(year))


def table_for(year):
    """The year's table row (a draft until approved); created on first need."""
    table, _ = BenefitTable.objects.get_or_create(year=check_year(year))
    return table


def approve_table(year, user=None):
    """Approve the year's benefit table as the city bureau, refusing it with each broken clause named."""
    year = check_year(year)
    table = table_for(year)
    if not BenefitRule.objects.filter(year=year).exists():
        raise Refused(f"{year}年度待遇政策表没有任何规则，请先导入 benefit_rules")

    def keeps_fj_clauses(row):
        broken = failures(table_checks(row.year))
        if broken:
            raise Refused(f"{row}不符合分级诊疗政策，不能审批：" + "；".join(f"{r.clause}（{r.detail}）" for r in broken))

    return approve(table, user, draft=ApprovalStatus.DRAFT, approved=ApprovalStatus.APPROVED,
                   what="审批待遇政策表", check=keeps_fj_clauses)


def revise_table(year, user=None):
    """Open the next version of an approved table as a draft (its rows become editable again)."""
    table = BenefitTable.objects.filter(year=check_year(year)).first()
    if table is None:
        raise Refused(f"{year}年度还没有待遇政策表")
    return revise(table, user, draft=ApprovalStatus.DRAFT, approved=ApprovalStatus.APPROVED,
                  what="建立待遇政策表新版本")


def approve_benefit_rules(year, user=None):
    """`approve benefit_rules --year` (SPEC §5): 1 when the table was approved, 0 when it already was."""
    table = BenefitTable.objects.filter(year=check_year(year)).first()
    if table is not None and table.status == ApprovalStatus.APPROVED:
        return 0
    approve_table(year, user)
    return 1


# --- 应付统筹 --------------------------------------------------------------------------------


def city_prefix(params):
    """The leading digits every in-city 区划代码 shares (330500 → 3305)."""
    code = params.city_code
    if not code:
        cities = (Region.objects.filter(parent__isnull=True).annotate(n=Count("children"))
                  .order_by("-n", "code").values_list("code", flat=True))
        code = cities.first()
        if code is None:
            raise Refused("没有区划数据，无法判断市内市外，请先导入区划")
    return _prefix(code)


def _prefix(code):
    while code.endswith("00") and len(code) > 2:
        code = code[:-2]
    return code


def computation_inputs(year):
    """(params, SQL values) of a year whose table is approved; refused otherwise."""
    table = BenefitTable.objects.filter(year=year).first()
    if table is None or table.status != ApprovalStatus.APPROVED:
        raise Refused(f"{year}年度待遇政策表尚未审批，审批后才能测算应付统筹")
    params = benefit_params(year)
    return params, arithmetic.sql_params(year, params, city_prefix(params), timezone.now())


class Progress:
    """The job's stage, committed at once on a connection of its own (a thread's), so the job page
    shows it while the figures are still being replaced inside the computation's transaction.

    Inside a caller's transaction (a test, the demo) the job row may not be committed yet: there
    the stage is recorded on the caller's connection, like before.
    """

    def __init__(self, job_id, stages):
        self.job_id, self.stages = job_id, stages
        self.own = bool(job_id) and not connection.in_atomic_block
        self.pool = concurrent.futures.ThreadPoolExecutor(1) if self.own else None
        if job_id:
            self._run(lambda: jobs.set_total(job_id, len(stages)))

    def _run(self, work):
        if self.pool is None:
            return work()
        return self.pool.submit(_on_own_connection, work).result()

    def reached(self, stage, detail=""):
        """Stage `stage` (1-based) is done; raises JobStopped when the job was cancelled or swept."""
        if not self.job_id:
            return
        line = f"第{stage}/{len(self.stages)}步完成：{self.stages[stage - 1]}" + (f"（{detail}）" if detail else "")

        def record():
            jobs.checkpoint(self.job_id, stage)
            jobs.append_log(self.job_id, line)

        self._run(record)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()


def _on_own_connection(work):
    try:
        return work()
    finally:
        connections.close_all()  # this thread's connection, not the caller's


STAGES = ("规则对照表与转诊、异地安置标记", "门诊：不设起付和限额的规则", "门诊：按就诊顺序累计起付和限额的规则",
          "住院：转诊合并起付（含跨年度）与年度限额", "写入不一致记录")


def compute_expected(year, user=None, job_id=None):
    """Replace the year's 应付统筹 figures; returns {"claims": n, "cases": n, "differing": n, "unruled": n}.

    Needs the year's approved benefit table and approved `benefits` policy. Stored are only the
    claims and cases whose 应付统筹 differs from 统筹支付 by more than 0.01 元, or that no rule covers
    (`UnmatchedFigure`); every other one is 一致 in the `BenefitFigure` view, and any one's
    derivation is re-derived on its page. All or nothing: one transaction, so the 核对 page and
    BEN01 never see half a recomputation; the job's progress is committed beside it.
    """
    year = check_year(year)
    if user is not None:
        refusal = write_refusal(BenefitTable(year=year, status=ApprovalStatus.DRAFT), user)
        if refusal:
            raise Refused(f"只有市医保局可以测算应付统筹：{refusal}")
    params, values = computation_inputs(year)
    progress = Progress(job_id, STAGES)
    try:
        return _compute(year, values, progress)
    finally:
        progress.close()


def _compute(year, values, progress):
    stamp = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    out = {part: f"benefit_{part}_{stamp}"
           for part in ("places", "rulemap", "flags", "persons", "free", "flagged", "running")}
    if connection.in_atomic_block:
        # Inside a caller's transaction (tests, the demo): its snapshot, a transaction-scoped lock.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"benefits:{year}"])
            return _replace(cursor, year, values, progress, out)
    # Two computations of one year at once would interleave their DELETE and INSERT. The lock is
    # taken before the transaction, so the snapshot the transaction reads is taken after the wait.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"benefits:{year}"])
        try:
            with transaction.atomic():
                # Every statement below reads the same claims, even while an upload commits.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return _replace(cursor, year, values, progress, out)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [f"benefits:{year}"])


def _replace(cursor, year, values, progress, out):
    # Compiling statements this size costs more than it saves on a year's claims.
    cursor.execute("SET LOCAL jit = off")
    # The running sums sort the claims under deductible or limit rules in memory.
    cursor.execute("SET LOCAL work_mem = '256MB'")
    # A four-column key's estimate misses by far; a merge join would then sort every claim.
    cursor.execute("SET LOCAL enable_mergejoin = off")
    # The planner needs the parts' sizes and key spreads, not fine histograms.
    cursor.execute("SET LOCAL default_statistics_target = 10")
    names = arithmetic.names_for({part: out[part] for part in ("places", "rulemap", "flags", "persons")})
    for part, sql in arithmetic.computation_parts(names):
        # Unlogged (not temporary) tables: parallel workers read them.
        cursor.execute(f"CREATE UNLOGGED TABLE {out[part]} AS {sql}", values)
        cursor.execute(f"ANALYZE {out[part]}")
    cursor.execute(f"SELECT bool_or(ordered), bool_or(NOT ordered OR rule_id IS NULL) FROM {out['rulemap']}")
    any_running, any_free = cursor.fetchone()
    progress.reached(1)
    # Claims meet their institution's class before the rule map: the joins in the order written.
    cursor.execute("SET LOCAL join_collapse_limit = 1")
    # JIT stays off (set above): with the person's county by subscript and the flags folded out,
    # compiling the claims statement's expressions in each process costs more than it saves
    # (city year, serial CPU: 3.32 and 3.32 × the year's scan without, 3.60 and 3.48 with).
    # CREATE TABLE AS runs in parallel workers; INSERT … SELECT would not.
    claims = last_claim = 0
    for stage, (present, sql) in enumerate(((any_free, arithmetic.outpatient_free(names)),
                                            (any_running, arithmetic.outpatient_running(names))), start=2):
        table = out["free" if stage == 2 else "running"]
        cursor.execute(f"CREATE UNLOGGED TABLE {table} AS {sql}" + ("" if present else " LIMIT 0"), values)
        cursor.execute(f"SELECT claims, last_id FROM {table}")
        for n, last in cursor.fetchall():
            claims, last_claim = claims + n, max(last_claim, last)
        progress.reached(stage, f"累计{claims}笔门诊")
    # The unsorted pass read every claim as if it had no referral or relocation flag; the few that
    # have one are figured again with theirs, each claim by its key.
    cursor.execute(f"CREATE UNLOGGED TABLE {out['flagged']} AS {arithmetic.outpatient_flagged(names)}"
                   + ("" if any_free else " LIMIT 0"), values)
    cursor.execute("RESET join_collapse_limit")
    cursor.execute(f"DELETE FROM {names['unmatched']} WHERE year = %s", [year])
    for table, unflagged in ((out["free"], arithmetic.UNFLAGGED.format(**names)), (out["flagged"], ""),
                             (out["running"], "")):
        cursor.execute(f"INSERT INTO {names['unmatched']} {_STORED_COLUMNS} "
                       + arithmetic.OUT_STORED.format(stage=table, unflagged=unflagged), values)
    for table in out.values():
        cursor.execute(f"DROP TABLE {table}")
    cases, last_case = _compute_cases(cursor, values)
    progress.reached(4, f"{cases}例住院")
    cursor.execute(
        f"SELECT count(*) FILTER (WHERE outcome = %s), count(*) FILTER (WHERE outcome = %s) "
        f"FROM {names['unmatched']} WHERE year = %s", [Outcome.DIFFERS, Outcome.UNRULED, year],
    )
    differing, unruled = cursor.fetchone()
    cursor.execute(f"DELETE FROM {UnmatchedTotal._meta.db_table} WHERE year = %s", [year])
    cursor.execute(TOTALS_SQL.format(totals=UnmatchedTotal._meta.db_table, unmatched=names["unmatched"]), [year])
    counts = {"claims": claims, "cases": cases, "differing": differing, "unruled": unruled}
    BenefitComputation.objects.update_or_create(year=year, defaults={
        **counts, "computed_at": values["now"], "last_claim_id": last_claim, "last_case_id": last_case,
    })
    progress.reached(5, f"不一致{differing}笔")
    return counts


# The 核对 page's 按机构汇总 (models.UnmatchedTotal), summed once with the rows (also migration 0020).
TOTALS_SQL = """
INSERT INTO {totals} (year, institution_id, care_type, level, visit_type, outcome, rows, fund_paid, expected, difference)
SELECT year, institution_id, care_type, level, visit_type, outcome, count(*), sum(fund_paid), sum(expected), sum(difference)
FROM {unmatched} WHERE year = %s
GROUP BY year, institution_id, care_type, level, visit_type, outcome
"""

_STORED_COLUMNS = ("(id, year, care_type, claim_id, case_id, serial, institution_id, person_id, service_date, level, "
                   "visit_type, in_scope, fund_paid, expected, difference, outcome, computed_at)")


def _compute_cases(cursor, values):
    """The year's stays (a few hundred thousand: temporary tables, one per-stay rule lookup)."""
    names = arithmetic.names_for({"flags": "benefit_case_flags", "cases": "benefit_cases", "earlier": "benefit_earlier"})
    for part, sql in arithmetic.inpatient_parts(names):
        cursor.execute(f"CREATE TEMP TABLE {names[part]} ON COMMIT DROP AS {sql}", values)
        if part == "cases":
            # The referral join looks up a person's earlier stays: by index, with statistics.
            cursor.execute(f"CREATE INDEX ON {names[part]} (person_id, institution_id)")
        cursor.execute(f"ANALYZE {names[part]}")
    cursor.execute(f"SELECT count(*), COALESCE(max(id), 0) FROM {names['cases']}")
    cases, _ = cursor.fetchone()
    cursor.execute(f"SELECT COALESCE(max(id), 0) FROM {names['case']}")
    last_case = cursor.fetchone()[0]
    cursor.execute(f"SELECT COALESCE(bool_or(annual_limit IS NOT NULL), false) FROM {names['cases']}")
    limited = cursor.fetchone()[0]
    cursor.execute(f"INSERT INTO {names['unmatched']} {_STORED_COLUMNS} {arithmetic.inpatient_stored(names, limited)}",
                   values)
    for part in ("flags", "cases", "earlier"):
        cursor.execute(f"DROP TABLE {names[part]}")
    return cases, last_case


def summary_text(year, counts):
    text = (f"{year}年度应付统筹测算完成：门诊{counts['claims']}笔，住院{counts['cases']}例，"
            f"统筹支付与应付统筹不一致{counts['differing']}笔")
    if counts["unruled"]:
        text += f"；{counts['unruled']}笔没有适用的待遇规则（未测算）"
    return text + "。"


def start_compute(year, user=None, sync=False):
    """Queue the computation as a background job with progress (settlement/jobs.py); returns the job."""
    from .tasks import compute_expected_task

    year = check_year(year)
    if user is not None:
        refusal = write_refusal(BenefitTable(year=year, status=ApprovalStatus.DRAFT), user)
        if refusal:
            raise Refused(f"只有市医保局可以测算应付统筹：{refusal}")
    job = jobs.create_job(JobKind.BENEFITS, f"{year}年度应付统筹测算", user=user, params={"year": year})
    if sync:
        run_job(job.pk)
        job.refresh_from_db()
    else:
        jobs.enqueue(job, compute_expected_task)
    return job


def run_job(job_id):
    """What the Celery task runs: claim the job, compute, finish it with the summary or the reason."""
    from settlement.models import Job

    if not jobs.claim(job_id):
        return
    job = Job.objects.select_related("user").get(pk=job_id)
    try:
        counts = compute_expected(job.params["year"], user=job.user, job_id=job_id)
    except jobs.JobStopped:
        return
    except Refused as exc:
        jobs.finish(job_id, str(exc), failed=True)
        return
    jobs.finish(job_id, summary_text(job.params["year"], counts), counts=counts)


__all__ = [
    "approve_table", "revise_table", "approve_benefit_rules", "compute_expected", "start_compute", "run_job",
    "table_checks", "BenefitParams",
]
