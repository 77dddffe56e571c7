"""The benefit engine's writes (SPEC §6.8): approving a benefit table, and computing 应付统筹.

`compute_expected(year)` replaces the year's `BenefitFigure` rows with one per outpatient claim
(by visit date) and inpatient case (by discharge date) of the year, in two set-based statements:

* outpatient: the deductible and the 年度限额 of a person-year under one rule row are consumed in
  (visit date, serial) order with running sums — consumed by claim i = min(D, Σ≤i) − min(D, Σ<i),
  the same identity for the limit over the claims' fund before the limit;
* inpatient: the deductible is per stay, less what the stay it is joined to by a referral charged;
  the limit is per person-year in (discharge date, serial) order, by the same running sums.

The same function is behind the admin action, the Celery task and the demo (one code path).
"""
import datetime

from django.db import connection, transaction
from django.db.models import Count

from alliances.models import Region
from alliances.scope import write_refusal
from settlement import jobs
from settlement.approval import Refused, approve, revise
from settlement.engine.services import check_year, policy_parameters, resolve_policy
from settlement.models import ApprovalStatus, InpatientCase, JobKind, OutpatientClaim, Scheme

from .checks import RuleRow, check_table, failures
from .models import BenefitFigure, BenefitRule, BenefitTable, CareType, Referral, Relocation
from .params import REVOKING_FILINGS, BenefitParams


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


def _t(model):
    return connection.ops.quote_name(model._meta.db_table)


def _tables():
    from alliances.models import Institution
    from contracts.models import Disease, InsuredPerson

    return {
        "claim": _t(OutpatientClaim), "case": _t(InpatientCase), "inst": _t(Institution), "region": _t(Region),
        "person": _t(InsuredPerson), "disease": _t(Disease), "rule": _t(BenefitRule), "ref": _t(Referral),
        "reloc": _t(Relocation), "fig": _t(BenefitFigure),
    }


# One claim or case per row with what the arithmetic needs; `day` is when referrals and relocation are
# judged (visit date; admission date), `ordered_on` the order deductible and limit are consumed in.
_BASE = {
    CareType.OUTPATIENT: """
    SELECT c.id, c.person_id, c.institution_id, c.serial, c.visit_date AS day, c.visit_date AS ordered_on,
      c.visit_type, c.insurance_type, COALESCE(c.in_scope_cost, c.total_cost) AS in_scope, c.fund_paid, i.level,
      i.kind, ir.code AS inst_code, i.county_id AS inst_county, p.county_id AS person_county,
      COALESCE(d.code, '') AS disease_code, NOT starts_with(ir.code, %(city)s) AS out_of_city
    FROM {claim} c JOIN {inst} i ON i.id = c.institution_id JOIN {region} ir ON ir.id = i.county_id
      JOIN {person} p ON p.id = c.person_id LEFT JOIN {disease} d ON d.id = c.disease_id
    WHERE c.visit_date BETWEEN %(first)s AND %(last)s
    """,
    CareType.INPATIENT: """
    SELECT c.id, c.person_id, c.institution_id, c.serial, c.admission_date AS day, c.discharge_date AS ordered_on,
      ''::varchar AS visit_type, p.insurance_type, COALESCE(c.in_scope_cost, c.total_cost) AS in_scope, c.fund_paid,
      i.level, i.kind, ir.code AS inst_code, i.county_id AS inst_county, p.county_id AS person_county,
      c.principal_diagnosis AS disease_code, NOT starts_with(ir.code, %(city)s) AS out_of_city
    FROM {case} c JOIN {inst} i ON i.id = c.institution_id JOIN {region} ir ON ir.id = i.county_id
      JOIN {person} p ON p.id = c.person_id
    WHERE c.discharge_date BETWEEN %(first)s AND %(last)s
    """,
}

# Referral and relocation flags, only for the few rows whose person has a relocation filing or a
# 下转 / 转外 referral: a small table the main statement hash-joins, instead of probing per claim.
_FLAGS = """
CREATE TEMP TABLE benefit_flags ON COMMIT DROP AS
WITH
  base AS ({base} AND c.person_id IN (
    SELECT person_id FROM {reloc} UNION SELECT person_id FROM {ref} WHERE direction IN ('下转', '转外'))),
  revoked AS (
    SELECT person_id FROM {reloc} WHERE filed_on BETWEEN %(first)s AND %(last)s GROUP BY person_id HAVING count(*) >= %(revoking)s
  )
SELECT b.id, (b.person_id IN (SELECT person_id FROM revoked)) AS revoked,
  CASE WHEN b.person_id IN (SELECT person_id FROM revoked) THEN NULL ELSE (
    SELECT r.destination FROM {reloc} r
    WHERE r.person_id = b.person_id AND r.filed_on <= b.day AND (r.ended_on IS NULL OR r.ended_on >= b.day)
      AND starts_with(b.inst_code, regexp_replace(r.destination, '(00)+$', ''))
    ORDER BY r.filed_on DESC LIMIT 1) END AS relocated_to,
  EXISTS (SELECT 1 FROM {ref} r WHERE r.person_id = b.person_id AND r.direction = '转外'
          AND b.day BETWEEN r.referred_on AND r.referred_on + %(out_days)s) AS referred_out,
  EXISTS (SELECT 1 FROM {ref} r WHERE r.person_id = b.person_id AND r.direction = '下转'
          AND r.to_institution_id = b.institution_id
          AND b.day BETWEEN r.referred_on AND r.referred_on + %(window)s) AS referred_down
FROM base b
"""

# Per row: its rule (few distinct keys: the planner memoises the lookup), its flags, the points.
_RULED = """
  flagged AS (
    SELECT b.*, COALESCE(f.revoked, false) AS revoked, f.relocated_to,
      COALESCE(f.referred_out, false) AS referred_out, COALESCE(f.referred_down, false) AS referred_down
    FROM base b LEFT JOIN benefit_flags f ON f.id = b.id
  ),
  ruled AS (
    SELECT f.*, ru.id AS rule_id, ru.deductible, ru.ratio AS base_ratio, ru.annual_limit
    FROM flagged f LEFT JOIN LATERAL (
      SELECT ru.id, ru.deductible, ru.ratio, ru.annual_limit FROM {rule} ru
      WHERE ru.year = %(year)s AND ru.insurance_type = f.insurance_type AND ru.care_type = %(care)s
        AND ru.level = CASE WHEN %(tcm)s AND f.kind = '中医' AND %(care)s = '门诊' THEN '基层' ELSE f.level END
        AND ru.visit_type IN ('', f.visit_type)
        AND (ru.disease_prefix = '' OR starts_with(upper(f.disease_code), ru.disease_prefix))
      ORDER BY (ru.disease_prefix <> '') DESC, length(ru.disease_prefix) DESC, (ru.visit_type <> '') DESC
      LIMIT 1) ru ON true
  ),
  pointed AS (
    SELECT r.*,
      CASE WHEN r.referred_down THEN %(down)s ELSE 0 END AS p_down,
      CASE WHEN r.relocated_to IS NULL AND NOT r.out_of_city AND r.inst_county <> r.person_county
           THEN %(cross)s ELSE 0 END AS p_cross,
      CASE WHEN r.relocated_to IS NULL AND r.out_of_city AND (r.revoked OR NOT r.referred_out)
           THEN %(out)s ELSE 0 END AS p_out
    FROM ruled r
  )
"""

_RELOCATION_TEXT = """
  CASE WHEN relocated_to IS NOT NULL THEN '安置地' || relocated_to || '，按市内待遇'
       WHEN revoked AND out_of_city THEN '当年度备案2次及以上，异地安置待遇已取消'
       ELSE '' END
"""

# The running sums are over whole 分 in bigint: a year's claims through two window passes is where
# numeric arithmetic would spend most of the time. Half-up to 分: (x·r + 5000) div 10000, x ≥ 0, r in
# basis points (the ratio's 2 decimals).
_OUTPATIENT = "WITH base AS (" + _BASE[CareType.OUTPATIENT] + ")," + _RULED + """,
  cents AS (
    SELECT p.id, p.person_id, p.institution_id, p.serial, p.day, p.level, p.visit_type, p.fund_paid, p.in_scope,
      p.rule_id, p.deductible, p.base_ratio, p.annual_limit, p.p_down, p.p_cross, p.p_out, p.relocated_to, p.revoked,
      p.out_of_city, LEAST(100, GREATEST(0, p.base_ratio + p.p_down - p.p_cross - p.p_out)) AS ratio,
      (p.in_scope * 100)::bigint AS in_c, (p.deductible * 100)::bigint AS ded_c, (p.annual_limit * 100)::bigint AS lim_c
    FROM pointed p
  ),
  consumed AS (
    SELECT c.*, (c.ratio * 100)::bigint AS ratio_bp, (SUM(c.in_c) OVER w)::bigint AS in_to_here
    FROM cents c
    WINDOW w AS (PARTITION BY c.person_id, c.rule_id ORDER BY c.day, c.serial, c.id ROWS UNBOUNDED PRECEDING)
  ),
  funded AS (
    SELECT c.*, ((c.in_c - c.ded_used_c) * c.ratio_bp + 5000) / 10000 AS before_c
    FROM (SELECT c.*, LEAST(c.ded_c, c.in_to_here) - LEAST(c.ded_c, c.in_to_here - c.in_c) AS ded_used_c
          FROM consumed c) c
  ),
  limited AS (
    SELECT f.*, (SUM(f.before_c) OVER w)::bigint - f.before_c AS fund_before_c
    FROM funded f
    WINDOW w AS (PARTITION BY f.person_id, f.rule_id ORDER BY f.day, f.serial, f.id ROWS UNBOUNDED PRECEDING)
  ),
  expected AS (
    SELECT l.*, l.ded_used_c / 100.0 AS ded_used, l.before_c / 100.0 AS before_limit,
      CASE WHEN l.rule_id IS NULL THEN NULL
           WHEN l.lim_c IS NULL THEN l.before_c / 100.0
           ELSE (LEAST(l.lim_c, l.fund_before_c + l.before_c) - LEAST(l.lim_c, l.fund_before_c)) / 100.0 END AS amount,
      (l.lim_c - LEAST(l.lim_c, l.fund_before_c)) / 100.0 AS left_before
    FROM limited l
  )
INSERT INTO {fig} (year, care_type, claim_id, case_id, serial, institution_id, person_id, service_date, level,
  visit_type, in_scope, rule_id, deductible, joined_case_id, joined_deductible, deductible_used, base_ratio,
  referral_points, cross_county_points, out_of_city_points, relocation, ratio, before_limit, annual_limit,
  limit_left, expected, fund_paid, difference, computed_at)
SELECT %(year)s, '门诊', e.id, NULL, e.serial, e.institution_id, e.person_id, e.day, e.level, e.visit_type, e.in_scope,
  e.rule_id, e.deductible, NULL, NULL,
  CASE WHEN e.rule_id IS NULL THEN NULL ELSE e.ded_used END, e.base_ratio, e.p_down, e.p_cross, e.p_out,
  """ + _RELOCATION_TEXT + """,
  CASE WHEN e.rule_id IS NULL THEN NULL ELSE e.ratio END, CASE WHEN e.rule_id IS NULL THEN NULL ELSE e.before_limit END,
  e.annual_limit, e.left_before, e.amount, e.fund_paid, e.fund_paid - e.amount, %(now)s
FROM expected e
"""

_INPATIENT_RULED = """
CREATE TEMP TABLE benefit_cases ON COMMIT DROP AS
WITH base AS (""" + _BASE[CareType.INPATIENT] + ")," + _RULED + """
SELECT p.*, p.ordered_on AS discharge_date, LEAST(100, GREATEST(0, p.base_ratio + p.p_down - p.p_cross - p.p_out)) AS ratio,
  LEAST(p.deductible, p.in_scope) AS own_charged
FROM pointed p
"""

# A stay joined by a referral to an earlier stay at the sending institution pays only the
# deductible difference: "两次住院视同一次住院收取起付标准".
_INPATIENT = """
WITH
  joined AS (
    SELECT b.*, j.case_id AS joined_case_id, j.charged AS joined_deductible
    FROM benefit_cases b LEFT JOIN LATERAL (
      SELECT a.id AS case_id, a.own_charged AS charged
      FROM {ref} r JOIN benefit_cases a
        ON a.person_id = r.person_id AND a.institution_id = r.from_institution_id AND a.discharge_date <= r.referred_on
      WHERE r.person_id = b.person_id AND r.to_institution_id = b.institution_id
        AND b.day BETWEEN r.referred_on AND r.referred_on + %(window)s AND a.id <> b.id AND a.rule_id IS NOT NULL
      ORDER BY a.discharge_date DESC, r.referred_on DESC, a.id DESC LIMIT 1) j ON true
  ),
  funded AS (
    SELECT c.*, round((c.in_scope - c.ded_used) * c.ratio / 100, 2) AS before_limit
    FROM (SELECT j.*, LEAST(j.in_scope, GREATEST(0, j.deductible - COALESCE(j.joined_deductible, 0))) AS ded_used
          FROM joined j) c
  ),
  limited AS (
    SELECT f.*, SUM(f.before_limit) OVER w - f.before_limit AS fund_before
    FROM funded f
    WINDOW w AS (PARTITION BY f.person_id, f.insurance_type, (f.rule_id IS NULL)
                 ORDER BY f.discharge_date, f.serial, f.id ROWS UNBOUNDED PRECEDING)
  ),
  expected AS (
    SELECT l.*,
      CASE WHEN l.rule_id IS NULL THEN NULL
           WHEN l.annual_limit IS NULL THEN l.before_limit
           ELSE LEAST(l.annual_limit, l.fund_before + l.before_limit) - LEAST(l.annual_limit, l.fund_before) END AS amount,
      l.annual_limit - LEAST(l.annual_limit, l.fund_before) AS left_before
    FROM limited l
  )
INSERT INTO {fig} (year, care_type, claim_id, case_id, serial, institution_id, person_id, service_date, level,
  visit_type, in_scope, rule_id, deductible, joined_case_id, joined_deductible, deductible_used, base_ratio,
  referral_points, cross_county_points, out_of_city_points, relocation, ratio, before_limit, annual_limit,
  limit_left, expected, fund_paid, difference, computed_at)
SELECT %(year)s, '住院', NULL, e.id, e.serial, e.institution_id, e.person_id, e.discharge_date, e.level, '',
  e.in_scope, e.rule_id, e.deductible, e.joined_case_id, e.joined_deductible, e.ded_used, e.base_ratio, e.p_down,
  e.p_cross, e.p_out, """ + _RELOCATION_TEXT + """, e.ratio, e.before_limit, e.annual_limit, e.left_before, e.amount,
  e.fund_paid, e.fund_paid - e.amount, %(now)s
FROM expected e
"""


def _sql_params(year, params):
    from django.utils import timezone

    return {
        "year": year, "first": datetime.date(year, 1, 1), "last": datetime.date(year, 12, 31),
        "city": city_prefix(params), "out_days": params.out_referral_days, "window": params.referral_window_days,
        "tcm": params.tcm_primary_ratio, "down": params.referral_down_points, "cross": params.cross_county_points,
        "out": params.out_of_city_points, "revoking": REVOKING_FILINGS, "now": timezone.now(),
    }


def compute_expected(year, user=None, job_id=None):
    """Replace the year's 应付统筹 figures; returns {"claims": n, "cases": n, "differing": n, "unruled": n}.

    Needs the year's approved benefit table and approved `benefits` policy. All or nothing: one
    transaction, so the 核对 page never shows half a recomputation.
    """
    year = check_year(year)
    if user is not None:
        refusal = write_refusal(BenefitTable(year=year, status=ApprovalStatus.DRAFT), user)
        if refusal:
            raise Refused(f"只有市医保局可以测算应付统筹：{refusal}")
    table = BenefitTable.objects.filter(year=year).first()
    if table is None or table.status != ApprovalStatus.APPROVED:
        raise Refused(f"{year}年度待遇政策表尚未审批，审批后才能测算应付统筹")
    params = benefit_params(year)
    values = _sql_params(year, params)
    names = _tables()
    with transaction.atomic(), connection.cursor() as cursor:
        # Two computations of one year at once would interleave their DELETE and INSERT.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"benefits:{year}"])
        if job_id:
            jobs.set_total(job_id, 3)
        # Compiling a statement this size costs more than it saves on a year's claims.
        cursor.execute("SET LOCAL jit = off")
        # One in-memory sort of the year's claims by person, rule and date instead of spilling to disk.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(f"DELETE FROM {names['fig']} WHERE year = %s", [year])
        outpatient = {**values, "care": CareType.OUTPATIENT}
        cursor.execute(_FLAGS.format(base=_BASE[CareType.OUTPATIENT], **names).format(**names), outpatient)
        cursor.execute(_OUTPATIENT.format(**names), outpatient)
        claims = cursor.rowcount
        cursor.execute("DROP TABLE benefit_flags")
        if job_id:
            jobs.checkpoint(job_id, 1)
        inpatient = {**values, "care": CareType.INPATIENT}
        cursor.execute(_FLAGS.format(base=_BASE[CareType.INPATIENT], **names).format(**names), inpatient)
        cursor.execute(_INPATIENT_RULED.format(**names), inpatient)
        # The referral join looks up a person's earlier stays: by index, with statistics.
        cursor.execute("CREATE INDEX ON benefit_cases (person_id, institution_id)")
        cursor.execute("ANALYZE benefit_cases")
        cursor.execute(_INPATIENT.format(**names), inpatient)
        cases = cursor.rowcount
        cursor.execute("DROP TABLE benefit_flags")
        cursor.execute("DROP TABLE benefit_cases")
        if job_id:
            jobs.checkpoint(job_id, 2)
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE abs(difference) > 0.01), count(*) FILTER (WHERE rule_id IS NULL) "
            f"FROM {names['fig']} WHERE year = %s", [year],
        )
        differing, unruled = cursor.fetchone()
    return {"claims": claims, "cases": cases, "differing": differing, "unruled": unruled}


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
