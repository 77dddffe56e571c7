"""Settlement runs (SPEC §7): start, gather, one task per batch of units, finish, approve, pay; monthly prepayment.

Lifecycle: 草稿 → 计算中 → 已计算 → 已审核 → 已拨付 (or 失败).
- `start_run` resolves the policy, creates or reuses the run row under a lock and hands over to
  `gather_run` (a task, or in-process with sync=True).
- `gather_run` calls the scheme's set-based `gather` once and stores each unit's inputs (codec-encoded)
  and 已拨付 in `RunUnit`, then sends one `compute_units` task per batch of units.
- `compute_units` is idempotent: it recomputes from the stored inputs and upserts the batch's results
  in one transaction; a unit's first completion (RunUnit.done flipping) increments `units_done`, and
  the transaction that brings it to `units_total` finishes the run. A killed worker's unit is redelivered
  (acks_late) or picked up by `resume_run`; both give the same figures because the inputs are stored.
- Every start is a new *computation* (`SettlementRun.computation`): its inputs and tasks carry the
  number, and `gathered_computation` says whether its gather stored them. A resume reuses stored
  inputs only when they are this computation's, else gathers again (SPEC §7); a task of an earlier
  computation finds its number outdated and writes nothing.
"""
import collections
import json
import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from alliances.models import Region
from alliances.scope import Role, restrict, scope_for
from settlement import jobs
from settlement.approval import Refused, enter_lock, require_four_eyes
from settlement.audit import recovery
from settlement.models import ApprovalStatus, Job, JobKind, JobStatus, Payment, PaymentSource, Scheme

from . import codec
from .base import RunContext, UnitOutcome, get_rule, policy_schemes, q2, registered_schemes
from .models import PaymentPolicy, RunStatus, RunUnit, SettlementRun, UnitResult
from .params import from_json, to_json

log = logging.getLogger(__name__)


# The engine's refusals and the approval machine's are one kind: every door shows them the same way.
SettlementError = Refused


# --- validation and policy resolution ------------------------------------------------------


def check_scheme(scheme, settling=True):
    """The rule of a scheme that settles; with `settling=False` also a policy-only scheme (`benefits`)."""
    known = registered_schemes() if settling else policy_schemes()
    if scheme not in known:
        raise SettlementError(f"未知的支付方案“{scheme}”，可选：{'、'.join(sorted(known))}")
    return get_rule(scheme)


def check_year(year):
    try:
        year = int(year)
    except (TypeError, ValueError):
        raise SettlementError(f"年度“{year}”无效，应为四位数字年份") from None
    if not 2000 <= year <= 2100:
        raise SettlementError(f"年度“{year}”无效，应在2000至2100之间")
    return year


def check_region(region_code):
    if not region_code:
        return None
    region = Region.objects.filter(code=region_code).first()
    if region is None:
        raise SettlementError(f"区划代码“{region_code}”不存在")
    return region


def resolve_policy(scheme, year, region_code=None):
    """The approved policy for (scheme, year, region), else the city-wide one; none stops the run."""
    qs = PaymentPolicy.objects.filter(scheme=scheme, year=year).select_related("region")
    candidates = []
    if region_code:
        candidates.append(qs.filter(region__code=region_code))
    candidates.append(qs.filter(region__isnull=True))
    for candidate in candidates:
        policy = candidate.first()
        if policy is not None:
            if policy.status != ApprovalStatus.APPROVED:
                raise SettlementError(f"{policy}尚未审批，审批后才能用于结算")
            return policy
    label = dict(_scheme_labels()).get(scheme, scheme)
    where = f"区划{region_code}及全市" if region_code else "全市"
    raise SettlementError(f"未找到{year}年度{label}（{where}）的支付政策，请先在“支付政策”中录入或加载预设")


def policy_parameters(policy):
    try:
        return policy.typed_parameters()
    except ValidationError as exc:
        raise SettlementError(f"{policy}的参数有误：{'；'.join(exc.messages)}") from None


def _scheme_labels():
    from settlement.models import Scheme

    return Scheme.choices


def _require(user, *, roles, region_code=None, action):
    """Who may do what (SPEC §1): the city bureau everywhere, the county bureau in its county."""
    if user is None or user.is_superuser:
        return
    scope = scope_for(user)
    if scope.role not in roles:
        raise SettlementError(f"您没有权限{action}")
    if scope.role == Role.COUNTY and (not region_code or region_code not in scope.region_codes):
        raise SettlementError(f"县区医保局只能{action}本县区的结算")


# --- start, gather, compute, finish ----------------------------------------------------------


def start_run(scheme, year, region_code=None, user=None, sync=False):
    """Start (or re-start) the settlement of `scheme` for `year`; returns the run.

    Re-running a draft, computed or failed run replaces its results in the same version; a run
    that is approved or paid is never touched: re-computing creates version + 1.
    """
    check_scheme(scheme)
    year = check_year(year)
    region = check_region(region_code)
    _require(user, roles={Role.CITY, Role.COUNTY}, region_code=region_code, action="发起结算")
    policy = resolve_policy(scheme, year, region_code)
    params = policy_parameters(policy)
    try:
        with transaction.atomic():
            runs = list(
                SettlementRun.objects.select_for_update()
                .filter(scheme=scheme, year=year, region=region).order_by("-version")
            )
            busy = next((r for r in runs if r.status == RunStatus.COMPUTING), None)
            if busy is not None:
                raise SettlementError(f"{busy}正在计算中（{busy.units_done}/{busy.units_total}），请等待完成后再试")
            latest = runs[0] if runs else None
            if latest is not None and not latest.is_read_only:
                run = latest
            else:
                run = SettlementRun(scheme=scheme, year=year, region=region, version=(latest.version + 1) if latest else 1)
            # The scheme's Chinese name: the job list is read by clerks, not by the code.
            where = region.name if region is not None else "全市"
            job = jobs.create_job(JobKind.SETTLEMENT, f"{year}年{Scheme(scheme).label}（{where}）结算", user=user,
                                  params={"scheme": scheme, "year": year, "region": region_code})
            run.status = RunStatus.COMPUTING
            run.computation += 1
            run.gathered_computation = None
            run.policy = policy
            run.parameters = to_json(params)
            run.units_total = run.units_done = 0
            run.warnings = []
            run.failure_reason = ""
            run.job = job
            run.created_by = user if user is not None and user.pk else None
            run.started_at = timezone.now()
            run.finished_at = None
            run.save()
            # The previous computation's inputs, done flags and figures go with it: none of them is
            # this computation's, and the run page must not show them as if they were.
            RunUnit.objects.filter(run=run).delete()
            _delete_results(run)
            if not sync:
                from .tasks import gather_run_task

                jobs.enqueue(job, gather_run_task, run.pk, run.computation)
    except IntegrityError:
        # Another start won the race between our lock and our insert; the constraint caught it.
        raise SettlementError(f"{year}年{scheme}结算正在计算中，请等待完成后再试") from None
    if sync:
        gather_run(run.pk, computation=run.computation, sync=True)
    # Embedded mode (no broker) has computed it already; otherwise this shows 计算中.
    run.refresh_from_db()
    return run


def _context(run):
    return RunContext(scheme=run.scheme, year=run.year, region_code=run.region_code)


def _params(run):
    return from_json(get_rule(run.scheme).params_class, run.parameters)


def gather_run(run_id, computation=None, sync=False):
    """Gather every unit's inputs once (set-based) and fan out one compute task per unit."""
    run = SettlementRun.objects.select_related("region").get(pk=run_id)
    if run.status != RunStatus.COMPUTING:
        return
    if computation is None:  # a message sent before computations were numbered
        computation = run.computation
    if computation != run.computation:
        return  # an earlier computation's gather, redelivered late: its run has moved on
    if run.gathered_computation == computation:
        # Redelivered after this gather committed (its worker died while sending the units).
        _dispatch_missing(run, sync=sync)
        return
    if run.job_id:
        jobs.start(run.job_id)
    try:
        _gather_and_store(run, computation, sync)
    finally:
        jobs.release(run.job_id)


def _gather_and_store(run, computation, sync):
    run_id = run.pk
    rule = get_rule(run.scheme)
    try:
        ctx, params = _context(run), _params(run)
        inputs = rule.gather(ctx, params)
        # The confirmed findings each unit's A paid (SPEC §9), taken now with the inputs.
        taken = recovery.deductions(rule, ctx, params, list(inputs))
        paid = dict(
            Payment.objects.filter(scheme=run.scheme, year=run.year, unit_code__in=list(inputs))
            .values_list("unit_code").annotate(total=Sum("amount")).values_list("unit_code", "total")
        )
        encoded = [
            {"unit_code": code, "unit_name": str(getattr(item, "unit_name", ""))[:200], "inputs": codec.encode(item),
             "paid": str(q2(paid.get(code) or 0)), "recovery": str(recovery.total(taken.get(code, ())))}
            for code, item in inputs.items()
        ]
    except Exception as exc:  # any input problem fails the run with its reason, nothing half-landed
        log.exception("gather failed for run %s", run_id)
        fail_run(run_id, f"数据汇总失败：{exc}", computation=computation)
        return
    codes = [unit["unit_code"] for unit in encoded]
    with transaction.atomic():
        run = SettlementRun.objects.select_for_update().get(pk=run_id)
        if (run.status != RunStatus.COMPUTING or run.computation != computation
                or run.gathered_computation == computation):
            return  # restarted, failed or gathered by a twin delivery meanwhile: drop these inputs
        RunUnit.objects.filter(run=run).delete()
        _delete_results(run)
        _insert_units(run, encoded, computation)
        if taken:
            recovery.store(list(RunUnit.objects.filter(run=run).only("id", "unit_code")), taken)
        # In the same transaction as the inputs: from here on a resume may reuse them.
        SettlementRun.objects.filter(pk=run_id).update(
            units_total=len(encoded), units_done=0, gathered_computation=computation,
        )
        if run.job_id:
            jobs.set_total(run.job_id, len(encoded))
        if codes and not sync:
            dispatch_units(run_id, codes, computation)
    if not codes:
        finish_run(run_id, computation)
    elif sync:
        dispatch_units(run_id, codes, computation, sync=True)


def _insert_units(run, encoded, computation):
    """The gathered inputs as `RunUnit` rows, in one statement of one JSON document (as `_upsert_results`)."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO {RunUnit._meta.db_table} (run_id, unit_code, unit_name, inputs, paid, recovery, done, computation)
            SELECT %(run)s, unit_code, unit_name, inputs, paid, recovery, false, %(computation)s
              FROM jsonb_to_recordset(%(rows)s::jsonb)
                AS g(unit_code text, unit_name text, inputs jsonb, paid numeric, recovery numeric)
        """, {"run": run.pk, "computation": computation, "rows": json.dumps(encoded, ensure_ascii=False)})


# Units travel in batches: one task computes a batch and persists it in one transaction (one bulk
# insert of the results, one update of the done flags and the counter), instead of ~10 queries per
# unit. A small run still spreads over the workers: at least WORKER_SPREAD batches when it can.
UNIT_BATCH = 50
WORKER_SPREAD = 8
# In-process (`settle --sync`) there are no workers to spread over, and each batch costs its own dozen
# round trips: the batches are as large as one transaction comfortably holds.
SYNC_BATCH = 1000


def unit_batches(unit_codes):
    size = min(UNIT_BATCH, max(1, -(-len(unit_codes) // WORKER_SPREAD)))
    return [unit_codes[start: start + size] for start in range(0, len(unit_codes), size)]


def dispatch_units(run_id, unit_codes, computation, sync=False):
    unit_codes = list(unit_codes)
    if sync:
        for start in range(0, len(unit_codes), SYNC_BATCH):
            compute_units(run_id, unit_codes[start: start + SYNC_BATCH], computation)
        return
    batches = unit_batches(unit_codes)
    from .tasks import compute_units_task

    for batch in batches:
        transaction.on_commit(lambda batch=batch: compute_units_task.delay(run_id, batch, computation))


def _dispatch_missing(run, sync=False):
    missing = list(run.units.filter(done=False).values_list("unit_code", flat=True))
    if missing:
        dispatch_units(run.pk, missing, run.computation, sync=sync)
    else:
        finish_run(run.pk, run.computation)


def compute_unit(run_id, unit_code, computation=None):
    """Compute and persist one unit; safe to run any number of times for the same unit."""
    compute_units(run_id, [unit_code], computation)


# A unit's stored inputs as plain values: a batch reads hundreds of them, and model instances cost more
# than the computation.
_StoredUnit = collections.namedtuple("_StoredUnit", "pk unit_code unit_name inputs paid recovery computation")


def compute_units(run_id, unit_codes, computation=None):
    """Compute a batch of a run's units from their stored inputs and persist them together.

    Safe to run any number of times: results are replaced, and each unit counts once. A unit whose
    computation fails fails the run with its name and reason, and nothing of the batch is written.
    """
    run = SettlementRun.objects.select_related("region").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.COMPUTING:
        return
    units = [
        _StoredUnit(*row) for row in RunUnit.objects.filter(run_id=run_id, unit_code__in=list(unit_codes))
        .order_by("unit_code").values_list(*_StoredUnit._fields)
    ]
    if computation is None and units:  # a message sent before computations were numbered
        computation = units[0].computation
    # Units of an earlier computation of this run: their inputs are gone, they must not count.
    units = [unit for unit in units if unit.computation == computation]
    if not units or run.computation != computation:
        return
    rule = get_rule(run.scheme)
    params = _params(run)
    jobs.hold(run.job_id)
    try:
        outcomes = []
        for unit in units:
            try:
                outcome = rule.compute(codec.decode(unit.inputs), params, unit.paid)
                if not isinstance(outcome, UnitOutcome):
                    raise TypeError("compute 未返回 UnitOutcome")
                outcome = outcome.deducting(unit.recovery)
            except Exception as exc:
                log.exception("unit %s of run %s failed", unit.unit_code, run_id)
                fail_run(run_id, f"单位{unit.unit_name or unit.unit_code}（{unit.unit_code}）计算失败：{exc}",
                         computation=computation)
                return
            outcomes.append((unit, outcome))
        try:
            done = _persist(run, outcomes, computation)
        except _RunNotComputing:
            return
        except Exception as exc:
            log.exception("results of run %s failed to persist", run_id)
            fail_run(run_id, f"结算结果写入失败：{exc}", computation=computation)
            return
    finally:
        jobs.release(run.job_id)
    if done is not None and done[0] >= done[1]:
        finish_run(run_id, computation)


class _RunNotComputing(Exception):
    pass


# Results are written set-based: a batch's rows go in as one JSON document, upserted and given their
# history rows ("+" new, "~" replaced) in one statement, and a run's old results leave in one statement
# with a "-" history row each. Through the ORM a batch of 50 cost ~25 ms of per-row Python and a
# re-run's delete one history INSERT per result (1.4 s for a family-doctor run of 910 institutions).
# The history rows carry what simple_history would write for each row saved or deleted here.
_RESULT_FIELDS = ("unit_name", "quota", "actual", "surplus", "unit_part", "fund_part", "entitled", "paid", "recovery",
                  "amount", "details", "warnings")
_RESULT_COLUMNS = ", ".join(("run_id", "unit_code") + _RESULT_FIELDS + ("computed_at",))


def _history_columns():
    history = UnitResult.history.model
    tracked = [field.column for field in history.tracked_fields]
    return ", ".join(tracked), ", ".join(f"r.{column}" for column in tracked)


def _history_user_id():
    """The user simple_history would name for a result saved now (the request's, else none)."""
    user = UnitResult.history.model.get_default_history_user(UnitResult())
    return getattr(user, "pk", None)


def _upsert_results(run, outcomes):
    """Insert or replace the outcomes' result rows of `run`, each with its history row, in one statement."""
    rows = [
        {"unit_code": outcome.unit_code, "unit_name": outcome.unit_name,
         **{field: str(getattr(outcome, field)) for field in _RESULT_FIELDS[1:-2]},
         "details": codec.to_json_safe(outcome.details), "warnings": list(outcome.warnings)}
        for outcome in outcomes
    ]
    money = ", ".join(f"{field} numeric" for field in _RESULT_FIELDS[1:-2])
    tracked, selected = _history_columns()
    sql = f"""
        WITH given AS (
            SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
                AS g(unit_code text, unit_name text, {money}, details jsonb, warnings jsonb)
        ), stored AS (
            SELECT unit_code FROM {UnitResult._meta.db_table}
             WHERE run_id = %(run)s AND unit_code IN (SELECT unit_code FROM given)
        ), written AS (
            INSERT INTO {UnitResult._meta.db_table} AS u ({_RESULT_COLUMNS})
            SELECT %(run)s, unit_code, {", ".join(_RESULT_FIELDS)}, %(now)s FROM given
            ON CONFLICT (run_id, unit_code) DO UPDATE SET
                {", ".join(f"{field} = EXCLUDED.{field}" for field in _RESULT_FIELDS)}, computed_at = EXCLUDED.computed_at
            RETURNING u.*
        )
        INSERT INTO {UnitResult.history.model._meta.db_table}
               ({tracked}, history_date, history_change_reason, history_type, history_user_id)
        SELECT {selected}, %(now)s, NULL,
               CASE WHEN r.unit_code IN (SELECT unit_code FROM stored) THEN '~' ELSE '+' END, %(user)s
          FROM written r
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"rows": json.dumps(rows, ensure_ascii=False), "run": run.pk, "now": timezone.now(),
                             "user": _history_user_id()})


def _delete_results(run):
    """Delete every result of `run` in one statement, each with its "-" history row."""
    tracked, selected = _history_columns()
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH r AS (DELETE FROM {UnitResult._meta.db_table} WHERE run_id = %(run)s RETURNING *)
            INSERT INTO {UnitResult.history.model._meta.db_table}
                   ({tracked}, history_date, history_change_reason, history_type, history_user_id)
            SELECT {selected}, %(now)s, NULL, '-', %(user)s FROM r
        """, {"run": run.pk, "now": timezone.now(), "user": _history_user_id()})


def _persist(run, outcomes, computation):
    """One transaction: the batch's results, their done flags and the run's counter move together."""
    with transaction.atomic():
        # The run row first, as a restart or a gather lock it: either that committed before, and
        # this computation is outdated, or it waits until this batch is in.
        current = (
            SettlementRun.objects.select_for_update(no_key=True)
            .filter(pk=run.pk, status=RunStatus.COMPUTING, computation=computation, gathered_computation=computation)
            .exists()
        )
        if not current:
            # Approved, failed or restarted meanwhile: never touch a closed run or another computation.
            raise _RunNotComputing()
        # A redelivered or resumed unit's result is replaced, with a history row.
        _upsert_results(run, [outcome for _, outcome in outcomes])
        first_time = RunUnit.objects.filter(
            pk__in=[unit.pk for unit, _ in outcomes], computation=computation, done=False,
        ).update(done=True)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {SettlementRun._meta.db_table} SET units_done = units_done + %s WHERE id = %s"
                " RETURNING units_done, units_total", [first_time, run.pk],
            )
            done, total = cursor.fetchone()
        if run.job_id:
            Job.objects.filter(pk=run.job_id).update(progress_done=done)
    # Only a batch whose completions counted may finish the run (a redelivered one must not).
    return (done, total) if first_time else None


def finish_run(run_id, computation=None):
    """After the last unit: the scheme's cross-unit checks, warnings, status 已计算."""
    try:
        with transaction.atomic():
            run = SettlementRun.objects.select_for_update(of=("self",)).select_related("region").get(pk=run_id)
            if run.status != RunStatus.COMPUTING or (computation is not None and computation != run.computation):
                return
            # Only from this computation's own inputs, every one of them done: a computation whose
            # gather never stored anything has no figures to finish with.
            if run.gathered_computation != run.computation or run.units.filter(done=False).exists():
                return
            # Plain values, not model instances: a run of a thousand units reads them all.
            fields = ("unit_code",) + _RESULT_FIELDS
            results = [dict(zip(fields, row)) for row in run.results.order_by("unit_code").values_list(*fields)]
            outcomes = [UnitOutcome(**{**r, "warnings": tuple(r["warnings"])}) for r in results]
            warnings = [f"{o.unit_name or o.unit_code}：{w}" for o in outcomes for w in o.warnings]
            warnings += list(get_rule(run.scheme).finish(_context(run), _params(run), outcomes) or [])
            if not results:
                warnings.append("没有需要结算的单位")
            run.warnings = warnings
            run.status = RunStatus.COMPUTED
            run.finished_at = timezone.now()
            run.save()
            if run.job_id:
                jobs.finish(run.job_id, f"{run}计算完成：{len(results)}个单位", counts={"units": len(results)})
            if run.scheme == Scheme.DRG:
                _rebuild_drg_analysis_after_commit(run.year)
    except Exception as exc:
        log.exception("finishing run %s failed", run_id)
        fail_run(run_id, f"汇总校验失败：{exc}", computation=computation)


def _rebuild_drg_analysis_after_commit(year):
    """The DRG 运行分析 pre-aggregates stand on the latest DRG run: rebuild them once this one is
    committed (a task of its own, so a failed rebuild never fails the run). Imported here because
    settlement.analysis reads this module."""
    from settlement.analysis.tasks import rebuild_drg_analysis_task

    transaction.on_commit(lambda: rebuild_drg_analysis_task.delay(year), robust=True)


def fail_run(run_id, reason, computation=None):
    """Mark the run 失败 with its reason, unless it is no longer computing `computation`."""
    with transaction.atomic():
        run = SettlementRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.COMPUTING or (computation is not None and computation != run.computation):
            return
        run.status = RunStatus.FAILED
        run.failure_reason = reason
        run.finished_at = timezone.now()
        run.save()
        if run.job_id:
            jobs.finish(run.job_id, reason, failed=True)


def resume_run(run, user=None, sync=False):
    """Finish a run whose worker died: reuse this computation's stored inputs if its gather finished
    (recomputing only the units not done), otherwise gather again as a new computation."""
    _require(user, roles={Role.CITY, Role.COUNTY}, region_code=run.region_code, action="继续结算")
    missing = []
    with transaction.atomic():
        run = SettlementRun.objects.select_for_update().get(pk=run.pk)
        if run.is_read_only:
            raise SettlementError(f"{run}已{run.get_status_display()}，不能再修改；如需重算请发起新版本")
        if run.status == RunStatus.COMPUTED:
            raise SettlementError(f"{run}已计算完成，无需继续")
        gathered = run.gathered_computation is not None and run.gathered_computation == run.computation
        if gathered:
            missing = list(run.units.filter(done=False).values_list("unit_code", flat=True))
            # The counter is re-derived from the done flags so a half-counted run can't overshoot.
            run.units_done = run.units.filter(done=True).count()
        else:
            # The inputs were never stored for this computation (its gather died). Whatever rows an
            # earlier computation left are not this one's; the dead gather's message, should the
            # broker hand it out again, finds its number outdated.
            run.computation += 1
            run.units_total = run.units_done = 0
            RunUnit.objects.filter(run=run).delete()
            _delete_results(run)
        run.status = RunStatus.COMPUTING
        run.failure_reason = ""
        run.finished_at = None
        try:
            with transaction.atomic():
                run.save()
        except IntegrityError:
            raise SettlementError(f"{run.year}年{run.scheme}结算已有批次正在计算中，请等待完成后再试") from None
        if run.job_id:
            if gathered:
                jobs.reopen(run.job_id, JobStatus.RUNNING, total=run.units_total, done=run.units_done)
            else:
                jobs.reopen(run.job_id, JobStatus.QUEUED)
        computation = run.computation
        if not sync:
            if not gathered:
                from .tasks import gather_run_task

                transaction.on_commit(lambda: gather_run_task.delay(run.job_id, run.pk, computation))
            elif missing:
                dispatch_units(run.pk, missing, computation)
    if sync and not gathered:
        gather_run(run.pk, computation=computation, sync=True)
    elif sync and missing:
        dispatch_units(run.pk, missing, computation, sync=True)
    elif gathered and not missing:
        finish_run(run.pk, computation)
    run.refresh_from_db()
    return run


def require_run(run, action):
    """Only a settlement run is approved, paid or exported: never a simulation (SPEC §11) or any
    other object that happens to share a primary key with a run."""
    if not isinstance(run, SettlementRun):
        raise SettlementError(f"“{run}”不是结算批次，不能{action}（政策模拟不产生任何资金结算）")


def approve_run(run, user=None):
    require_run(run, "审核")
    _require(user, roles={Role.CITY}, action="审核结算")
    with transaction.atomic():
        run = SettlementRun.objects.select_for_update().get(pk=run.pk)
        if run.status != RunStatus.COMPUTED:
            raise SettlementError(f"只有“已计算”的结算批次才能审核，{run}当前为“{run.get_status_display()}”")
        # Four eyes: the one who started this computation cannot approve its result.
        require_four_eyes(user, [run], {run.pk: run.created_by_id}, "审核结算", act="发起计算")
        blockers = get_rule(run.scheme).approval_blockers(_context(run))
        if blockers:
            raise SettlementError(f"{run}暂不能审核：{'；'.join(blockers)}")
        enter_lock(run, user, status=RunStatus.APPROVED)
    return run


def mark_paid(run, user=None):
    require_run(run, "确认拨付")
    _require(user, roles={Role.CITY}, action="确认拨付")
    with transaction.atomic():
        run = SettlementRun.objects.select_for_update().get(pk=run.pk)
        if run.status != RunStatus.APPROVED:
            raise SettlementError(f"只有“已审核”的结算批次才能确认拨付，{run}当前为“{run.get_status_display()}”")
        run.status = RunStatus.PAID
        run.paid_at = timezone.now()
        run.save()  # the one change a locked run allows (SettlementRun.allowed_locked_change)
    return run


def visible_warnings(run, user):
    """The run's warnings a user may read: all of them city-wide, else only those of units in scope.

    A run's cross-unit warnings name other counties' units and figures, so they stay with the
    users who see the whole run.
    """
    if user is None or scope_for(user).sees_all:
        return list(run.warnings)
    results = restrict(run.results.all(), user).exclude(warnings=[]).order_by("unit_code")
    return [f"{r.unit_name or r.unit_code}：{w}" for r in results.only("unit_code", "unit_name", "warnings") for w in r.warnings]


def latest_run(scheme, year, region_code=None, statuses=(RunStatus.COMPUTED, RunStatus.APPROVED, RunStatus.PAID)):
    region = check_region(region_code)
    return (
        SettlementRun.objects.filter(scheme=scheme, year=year, region=region, status__in=statuses)
        .order_by("-version").first()
    )


# --- monthly prepayment ------------------------------------------------------------------


def run_prepayment(scheme, year, month, region_code=None, user=None):
    """Write the month's 月度预拨 `Payment` rows from the scheme's prepayment hook; idempotent.

    An imported payment for the same (year, month, scheme, unit) is left as it is: it records money
    already paid, and paying the month again would pay twice.
    """
    rule = check_scheme(scheme)
    year = check_year(year)
    try:
        month = int(month)
    except (TypeError, ValueError):
        raise SettlementError(f"月份“{month}”无效，应为1至12") from None
    if not 1 <= month <= 12:
        raise SettlementError(f"月份“{month}”无效，应为1至12")
    check_region(region_code)
    _require(user, roles={Role.CITY, Role.COUNTY}, region_code=region_code, action="执行月度预拨")
    params = policy_parameters(resolve_policy(scheme, year, region_code))
    amounts = rule.prepayment(RunContext(scheme=scheme, year=year, region_code=region_code), params, month) or {}
    summary = {"created": 0, "updated": 0, "unchanged": 0, "skipped": []}
    with transaction.atomic():
        existing = {
            p.unit_code: p
            for p in Payment.objects.select_for_update().filter(
                year=year, month=month, scheme=scheme, unit_code__in=list(amounts),
            )
        }
        for code, amount in sorted(amounts.items()):
            amount = q2(amount)
            current = existing.get(code)
            if current is None:
                Payment.objects.create(year=year, month=month, scheme=scheme, unit_code=code, amount=amount,
                                       source=PaymentSource.PREPAYMENT)
                summary["created"] += 1
            elif current.source != PaymentSource.PREPAYMENT:
                summary["skipped"].append(code)
            elif current.amount != amount:
                current.amount = amount
                current.save()
                summary["updated"] += 1
            else:
                summary["unchanged"] += 1
    return summary
