"""Running the audit rules and reviewing their findings (SPEC §9): one code path for the admin, CLI and Celery.

A run upserts each rule's findings by (year, rule, subject) in one statement per rule: a finding found
again keeps its review state (an expired one reopens as 待核查), a decided one keeps the figures it was
decided on, and an undecided finding the rule no longer produces becomes 已失效.
"""
import contextlib
import dataclasses

from django.db import connection, transaction
from django.utils import timezone

from alliances.scope import Role, restrict, scope_for, write_refusal
from settlement import jobs
from settlement.approval import Refused
from settlement.engine.models import PaymentPolicy
from settlement.engine.params import from_json
from settlement.engine.services import _require, check_region, check_year, policy_parameters
from settlement.models import ApprovalStatus, Job, JobKind

from .models import DECIDED, Finding, FindingStatus, FindingStep
from .params import AUDIT, AuditParams
from .rules import AuditContext, registered_rules
from .rules.base import COLUMNS

AuditError = Refused


def check_rules(codes):
    """The rules named (all when none), in code order; an unknown code is refused by name."""
    rules = registered_rules()
    codes = [c.strip().upper() for c in (codes or []) if c and c.strip()]
    unknown = [c for c in codes if c not in rules]
    if unknown:
        raise AuditError(f"未知的审核规则“{'、'.join(unknown)}”，可选：{'、'.join(rules)}")
    return [rules[c] for c in sorted(set(codes))] if codes else list(rules.values())


def audit_parameters(year, region_code=None):
    """The approved `audit` policy of the county, else the city's; none at all = the SPEC defaults."""
    qs = PaymentPolicy.objects.filter(scheme=AUDIT, year=year).select_related("region")
    candidates = ([qs.filter(region__code=region_code)] if region_code else []) + [qs.filter(region__isnull=True)]
    for candidate in candidates:
        policy = candidate.first()
        if policy is not None:
            if policy.status != ApprovalStatus.APPROVED:
                raise AuditError(f"{policy}尚未审批，审批后才能用于审核")
            return policy, policy_parameters(policy)
    return None, from_json(AuditParams, {})


@dataclasses.dataclass(frozen=True)
class RuleOutcome:
    code: str
    name: str
    produced: int
    expired: int


def start_audit(year, rule_codes=None, region_code=None, user=None, sync=False):
    """Check the request, then run it here (`sync`) or as a background job; returns the job."""
    year = check_year(year)
    region = check_region(region_code)
    rules = check_rules(rule_codes)
    _require(user, roles={Role.CITY, Role.COUNTY}, region_code=region_code, action="运行智能审核")
    audit_parameters(year, region_code)  # a draft policy is refused before anything is queued
    where = region.name if region else "全市"
    job = jobs.create_job(JobKind.AUDIT, f"{year}年智能审核（{where}）", user=user,
                          params={"year": year, "region": region_code, "rules": [r.code for r in rules]})
    if sync:
        run_audit_job(job.pk)
        job.refresh_from_db()
    else:
        from .tasks import audit_task  # tasks import this module; the reverse edge is the door, not a layer

        jobs.enqueue(job, audit_task)
    return job


def run_audit_job(job_id):
    job = Job.objects.get(pk=job_id)
    params = job.params
    rules = check_rules(params.get("rules"))
    jobs.start(job_id, total=len(rules))
    try:
        outcomes = []
        with shared_passes(rules, params["year"], params.get("region")) as prepared:
            for done, rule in enumerate(rules, start=1):
                outcome = run_rule(rule, params["year"], params.get("region"), prepared=prepared)
                outcomes.append(outcome)
                jobs.append_log(job_id, f"{rule.code} {rule.name}：疑点{outcome.produced}条，失效{outcome.expired}条")
                jobs.checkpoint(job_id, done)
    except jobs.JobStopped:
        return []
    except Exception as exc:
        jobs.finish(job_id, message=f"审核失败：{exc}", failed=True)
        raise
    total = sum(o.produced for o in outcomes)
    jobs.finish(job_id, message=f"审核完成：{len(outcomes)}条规则，疑点{total}条",
                counts={o.code: o.produced for o in outcomes})
    return outcomes


def run_audit(year, rule_codes=None, region_code=None):
    """Run the rules in this process (no job); returns one RuleOutcome per rule."""
    year = check_year(year)
    check_region(region_code)
    rules = check_rules(rule_codes)
    with shared_passes(rules, year, region_code) as prepared:
        return [run_rule(rule, year, region_code, prepared=prepared) for rule in rules]


# The rule's rows of one run, materialised once: CREATE TABLE AS may plan the rule's SELECT in
# parallel, which an INSERT … SELECT never does, and the upsert, the reopening and the expiry then read
# a few thousand rows instead of evaluating the rule again.
PRODUCED = "audit_produced"


def _roomy(cursor):
    """For the rest of the transaction, no JIT compilation: on a rule's one pass over a year of claims it
    costs more than it saves. (More work_mem is no help: a hash of a million (person, day) groups in
    one process is slower than the parallel sorts it replaces.)"""
    cursor.execute("SET LOCAL jit = off")


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What the rules of one run share: the parameters and the context naming the passes' tables."""

    params: AuditParams
    context: AuditContext


@contextlib.contextmanager
def shared_passes(rules, year, region_code=None):
    """Each SharedPass the rules name, run once into a temporary table (the session's own, gone with
    it if a worker dies) and dropped at the end; yields the Prepared the rules are run with.

    Every pass reads the whole city's claims of the year, whatever the region: a rule filters its rows
    by region after, as without a pass. Each table is committed on its own, so that the rules' own
    transactions (one per rule, for the job's progress) all read it."""
    _, params = audit_parameters(year, region_code)
    ctx = AuditContext(year)
    tables = {}
    try:
        for shared in {p.name: p for rule in rules for p in rule.passes}.values():
            table = f"pg_temp.audit_{shared.name}"
            sql, named = shared.select(ctx, params)
            with transaction.atomic(), connection.cursor() as cursor:
                _roomy(cursor)
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
                cursor.execute(f"CREATE TEMPORARY TABLE {table} AS {sql}", named)
                cursor.execute(f"ANALYZE {table}")
            tables[shared.name] = table
        yield Prepared(params, AuditContext(year, tables))
    finally:
        if tables and not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {', '.join(tables.values())}")


def run_rule(rule, year, region_code=None, prepared=None):
    """One rule over the year: its findings upserted by (year, rule, subject) in one statement, the
    expired ones it finds again reopened and the undecided ones it no longer finds expired, one
    statement each with their history rows in bulk. Without `prepared` (from shared_passes), the
    rule's own passes are run first."""
    if prepared is None:
        with shared_passes([rule], year, region_code) as prepared:
            return run_rule(rule, year, region_code, prepared)
    params = prepared.params
    region = check_region(region_code)
    rule_sql, named = rule.select(prepared.context, params)
    now = timezone.now()
    named = {
        **named, "a_year": year, "a_rule": rule.code, "a_name": rule.name, "a_severity": rule.severity,
        "a_region": region.pk if region else None, "a_now": now,
        "a_open": FindingStatus.OPEN, "a_expired": FindingStatus.EXPIRED, "a_decided": list(DECIDED),
    }
    table, steps = Finding._meta.db_table, FindingStep._meta.db_table
    columns = ", ".join(COLUMNS)
    produce = f"""
    CREATE TEMPORARY TABLE {PRODUCED} AS
    SELECT * FROM ({rule_sql}) AS p ({columns})
    WHERE %(a_region)s::bigint IS NULL OR p.region_id = %(a_region)s::bigint
    """
    # Found again after it had expired: back to 待核查, with the step that says so.
    reopen = f"""
    WITH reopened AS (
        UPDATE {table} f SET status = %(a_open)s
        FROM {PRODUCED} p
        WHERE f.year = %(a_year)s AND f.rule = %(a_rule)s AND f.subject = p.subject AND f.status = %(a_expired)s
        RETURNING f.id
    )
    INSERT INTO {steps} (finding_id, from_status, to_status, reason, attachment, at)
    SELECT id, %(a_expired)s, %(a_open)s, '重新审核时规则再次产生该疑点', '', %(a_now)s FROM reopened
    """
    upsert = f"""
    INSERT INTO {table} (year, rule, rule_name, severity, status, found_at, seen_at, {columns})
    SELECT %(a_year)s, %(a_rule)s, %(a_name)s, %(a_severity)s, %(a_open)s, %(a_now)s, %(a_now)s, {columns}
    FROM {PRODUCED}
    ON CONFLICT (year, rule, subject) DO UPDATE SET
        seen_at = EXCLUDED.seen_at,
        amount = CASE WHEN {table}.status = ANY(%(a_decided)s) THEN {table}.amount ELSE EXCLUDED.amount END,
        evidence = CASE WHEN {table}.status = ANY(%(a_decided)s) THEN {table}.evidence ELSE EXCLUDED.evidence END,
        evidence_data = CASE WHEN {table}.status = ANY(%(a_decided)s) THEN {table}.evidence_data
                             ELSE EXCLUDED.evidence_data END,
        region_id = EXCLUDED.region_id, institution_id = EXCLUDED.institution_id,
        person_id = EXCLUDED.person_id, claim_id = EXCLUDED.claim_id, case_id = EXCLUDED.case_id,
        contract_id = EXCLUDED.contract_id
    """
    # The expiry records its step in the same statement: who = nobody (the audit run), why = the rule.
    expire = f"""
    WITH expired AS (
        UPDATE {table} f SET status = %(a_expired)s
        FROM {table} old
        WHERE old.id = f.id AND f.year = %(a_year)s AND f.rule = %(a_rule)s AND f.seen_at < %(a_now)s
          AND f.status <> %(a_expired)s AND NOT f.status = ANY(%(a_decided)s)
          AND (%(a_region)s::bigint IS NULL OR f.region_id = %(a_region)s::bigint)
        RETURNING f.id, old.status AS from_status
    )
    INSERT INTO {steps} (finding_id, from_status, to_status, reason, attachment, at)
    SELECT id, from_status, %(a_expired)s, '重新审核时规则不再产生该疑点', '', %(a_now)s FROM expired
    """
    with transaction.atomic(), connection.cursor() as cursor:
        _roomy(cursor)
        cursor.execute(produce, named)
        cursor.execute(reopen, named)
        cursor.execute(upsert, named)
        produced = cursor.rowcount
        cursor.execute(expire, named)
        expired = cursor.rowcount
        cursor.execute(f"DROP TABLE {PRODUCED}")
    return RuleOutcome(rule.code, rule.name, produced, expired)


# --- review ----------------------------------------------------------------------------------


def _reviewable(finding_ids, user):
    """The findings the user may see, locked in key order; any other id is refused, not skipped."""
    ids = sorted({int(i) for i in finding_ids})
    rows = list(restrict(Finding.objects.all(), user).select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk"))
    if len(rows) != len(ids):
        raise AuditError("疑点不存在或不在您的数据范围内")
    for row in rows:
        refusal = write_refusal(row, user)
        if refusal:
            raise AuditError(refusal)
    return rows


def appeal(finding_id, user, reason, attachment=None):
    """申诉: the hospital answers an open finding of its own (a lead hospital its alliance's)."""
    reason = (reason or "").strip()
    if scope_for(user).role != Role.HOSPITAL:
        raise AuditError("只有医疗机构可以对疑点提出申诉")
    if not reason:
        raise AuditError("请填写申诉理由")
    with transaction.atomic():
        (finding,) = _reviewable([finding_id], user)
        if finding.status != FindingStatus.OPEN:
            raise AuditError(f"疑点“{finding}”当前为{finding.status}，只有待核查的疑点可以申诉")
        _step(finding, FindingStatus.APPEALED, user, reason, attachment)
    return finding


def decide(finding_ids, user, confirmed, reason):
    """已确认违规 / 已排除 by the county or city bureau, for one finding or many at once (bulk review)."""
    reason = (reason or "").strip()
    if scope_for(user).role not in (Role.CITY, Role.COUNTY) and not getattr(user, "is_superuser", False):
        raise AuditError("只有市、县区医保局可以认定疑点")
    if not reason:
        raise AuditError("请填写认定理由")
    if not finding_ids:
        raise AuditError("请选择要认定的疑点")
    target = FindingStatus.CONFIRMED if confirmed else FindingStatus.DISMISSED
    with transaction.atomic():
        findings = _reviewable(finding_ids, user)
        bad = [f for f in findings if f.status not in (FindingStatus.OPEN, FindingStatus.APPEALED)]
        if bad:
            names = "、".join(f"{f.rule} {f.subject}（{f.status}）" for f in bad[:5])
            raise AuditError(f"只有待核查或申诉中的疑点可以认定，以下疑点不能：{names}")
        for finding in findings:
            _step(finding, target, user, reason)
    return findings


def _step(finding, to_status, user, reason, attachment=None):
    step = FindingStep(finding=finding, from_status=finding.status, to_status=to_status, reason=reason,
                       user=user if user is not None and user.pk else None)
    if attachment is not None:
        step.attachment.save(getattr(attachment, "name", "attachment"), attachment, save=False)
    step.save()
    finding.status = to_status
    finding.save(update_fields=["status"])
