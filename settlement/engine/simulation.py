"""Policy simulation (政策模拟, SPEC §11): what a settled year would have paid under other parameters.

A simulation takes a base run that is computed, approved or paid, the parameters to change and up to
three factors, and recomputes every unit with the scheme's own pure `compute` from the base run's
stored inputs (the RunUnit rows of its last computation, SPEC §7). Only when a change acts inside
the gather (a scheme's `gather_parameters`, or a factor the scheme applies per case) does it gather
again, and then into the simulation only. For DRG the point value of each pool is recomputed by
`compute` itself from the pool's budget and points carried by every unit's inputs.

It runs in the background as a job (kind 政策模拟) with progress, and writes nothing but its own
Simulation and SimulationUnit rows: never the base run, its results, payments or exports. It is not
a SettlementRun, so no approval, payment or settlement export can take it.

Who may simulate: the city bureau for any run, a county bureau for its own county's runs (the users
who may settle them, SPEC §1). Everyone else reads simulations within their scope only.
"""
import dataclasses
import logging
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from alliances.scope import Role, restrict, scope_for
from settlement import jobs
from settlement.approval import Refused
from settlement.models import JobKind, JobStatus, Payment, Scheme

from . import codec
from .base import RunContext, UnitOutcome, get_rule, q2
from .models import RunStatus, RunUnit, SettlementRun, UnitResult
from .params import field_label, from_json, to_json
from .policy_services import parse_assignments
from .services import check_region, check_scheme, check_year, latest_run
from .simulation_models import FIGURE_FIELDS, Simulation, SimulationStatus, SimulationUnit

log = logging.getLogger(__name__)

ONE = Decimal("1")
SIMULABLE = (RunStatus.COMPUTED, RunStatus.APPROVED, RunStatus.PAID)
# How often (in units) a simulation records its progress and notices a cancel.
PROGRESS_EVERY = 50


def _factor(label):
    return dataclasses.field(default=ONE, metadata={"label": label, "min": Decimal("0.01"), "max": Decimal("10")})


@dataclasses.dataclass(frozen=True)
class Factors:
    """The factors of SPEC §11, each 1 when not used."""

    standards: Decimal = _factor("标准调整系数")
    budget: Decimal = _factor("预算调整系数")
    base_points: Decimal = _factor("基准点数调整系数")

    def used(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != ONE}


# The command-line and form names of the factors (SPEC §5): `standards_factor=1.05` etc.
FACTOR_NAMES = {f"{f.name}_factor": f.name for f in dataclasses.fields(Factors)}


def factor_label(name):
    """标准调整系数 for `standards` (or `standards_factor`)."""
    field = {f.name: f for f in dataclasses.fields(Factors)}[FACTOR_NAMES.get(name, name)]
    return field_label(field)


def factors_from(data):
    """Factors from {"standards": "1.05", …} (or the *_factor names); Refused with Chinese reasons."""
    data = {FACTOR_NAMES.get(key, key): value for key, value in (data or {}).items()}
    try:
        return from_json(Factors, {k: v for k, v in data.items() if v not in (None, "")})
    except ValidationError as exc:
        raise Refused("；".join(m.replace("参数“", "系数“") for m in exc.messages)) from None


def scheme_label(scheme):
    return dict(Scheme.choices).get(scheme, scheme)


# --- who may simulate ------------------------------------------------------------------------


def simulate_refusal(user, run):
    """Why `user` may not simulate on `run` (Chinese), or None. `user=None` is the operator (CLI)."""
    if user is None or user.is_superuser:
        return None
    scope = scope_for(user)
    if scope.role == Role.CITY:
        return None
    if scope.role == Role.COUNTY:
        if run.region_id and run.region_id in scope.region_ids:
            return None
        return "县区医保局只能对本县区的结算批次进行政策模拟"
    return "您没有权限发起政策模拟：只有市医保局和县区医保局可以模拟"


# --- the request ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """A validated simulation request: the full parameter set, what changed, the factors, and
    whether the gather has to run again."""

    params: object
    parameters: dict
    changes: dict
    factors: Factors
    regather: bool


def plan(run, changes=None, factors=None):
    """Validate a request against the base run; Refused (Chinese, naming the parameter) when bad."""
    rule = get_rule(run.scheme)
    if run.status not in SIMULABLE:
        raise Refused(f"{run}当前为“{run.get_status_display()}”，只有已计算、已审核或已拨付的结算批次可以模拟")
    if run.gathered_computation != run.computation:
        raise Refused(f"{run}没有保存本轮计算的输入数据，请重新计算后再模拟")
    factors = factors if isinstance(factors, Factors) else factors_from(factors)
    data = dict(run.parameters or {})
    data.update(changes or {})
    try:
        params = from_json(rule.params_class, data)
    except ValidationError as exc:
        raise Refused("；".join(exc.messages)) from None
    stored = to_json(params)
    base = from_json(rule.params_class, run.parameters or {})
    # Compared as typed values: "0.850" is no change from "0.85".
    changed = {name: stored[name] for name in (changes or {}) if getattr(params, name) != getattr(base, name)}
    where = {}
    for name in factors.used():
        place = rule.simulation_factors.get(name)
        if place is None:
            raise Refused(f"{factor_label(name)}（{name}_factor）不适用于{scheme_label(run.scheme)}")
        where[name] = place
    gathered_by = rule.gather_parameters
    regather = (
        (bool(changed) if gathered_by is None else bool(set(changed) & gathered_by))
        or "gather" in where.values()
    )
    return Plan(params=params, parameters=stored, changes=changed, factors=factors, regather=regather)


def plan_from_assignments(run, assignments):
    """The command line's NAME=VALUE words (policy parameters and *_factor) as a Plan."""
    rule = get_rule(run.scheme)
    factor_words = [w for w in assignments if w.partition("=")[0].strip() in FACTOR_NAMES]
    policy_words = [w for w in assignments if w not in factor_words]
    factors = {}
    for word in factor_words:
        name, _, value = word.partition("=")
        name = name.strip()
        if name in factors:
            raise Refused(f"系数“{factor_label(name)}”（{name}）给出了不止一次")
        factors[name] = value.strip()
    changes = parse_assignments(rule.params_class, policy_words) if policy_words else {}
    return plan(run, changes, factors)


# --- start and run -------------------------------------------------------------------------


def start_simulation(run, changes=None, factors=None, user=None, note="", sync=False):
    """Create a simulation of `run` and compute it in the background (or here with sync=True)."""
    refusal = simulate_refusal(user, run)
    if refusal:
        raise Refused(refusal)
    request = plan(run, changes, factors)
    with transaction.atomic():
        base = SettlementRun.objects.select_for_update().get(pk=run.pk)  # numbers per run, no twin
        number = (base.simulations.order_by("-number").values_list("number", flat=True).first() or 0) + 1
        job = jobs.create_job(JobKind.SIMULATION, f"{base}政策模拟{number}", user=user,
                              params={"run": base.pk, "number": number})
        simulation = Simulation.objects.create(
            base_run=base, base_computation=base.computation, number=number, scheme=base.scheme,
            year=base.year, region=base.region, note=note[:200], parameters=request.parameters,
            changes=request.changes, factors={k: str(v) for k, v in request.factors.used().items()},
            regathered=request.regather, job=job, created_by=user if user is not None and user.pk else None,
        )
        if not sync:
            from .tasks import simulation_task

            jobs.enqueue(job, simulation_task, simulation.pk)
    if sync:
        jobs.claim(job.pk)
        run_simulation(simulation.pk)
    simulation.refresh_from_db()
    return simulation


def run_simulation(simulation_id):
    """Compute every unit of the simulation and store them in one transaction (nothing half-way)."""
    simulation = Simulation.objects.select_related("base_run", "base_run__region").get(pk=simulation_id)
    if simulation.status not in (SimulationStatus.QUEUED, SimulationStatus.COMPUTING):
        return
    Simulation.objects.filter(pk=simulation.pk).update(status=SimulationStatus.COMPUTING)
    try:
        outcomes, warnings = _compute_all(simulation)
        _store(simulation, outcomes, warnings)
    except jobs.JobStopped:
        _fail(simulation, "模拟已取消或后台进程已中断，未保存任何结果")
    except Refused as exc:
        _fail(simulation, str(exc))
    except Exception as exc:  # any input problem fails the simulation with its reason, nothing stored
        log.exception("simulation %s failed", simulation_id)
        _fail(simulation, f"模拟计算失败：{exc}")


def _compute_all(simulation):
    run = simulation.base_run
    rule = get_rule(run.scheme)
    params = from_json(rule.params_class, simulation.parameters)
    factors = factors_from(simulation.factors)
    on_inputs = dataclasses.replace(
        Factors(), **{k: v for k, v in factors.used().items() if rule.simulation_factors.get(k) == "inputs"},
    )
    ctx = RunContext(scheme=run.scheme, year=run.year, region_code=run.region_code)
    stored = RunUnit.objects.filter(run=run, computation=simulation.base_computation).order_by("unit_code")
    paid = dict(stored.values_list("unit_code", "paid"))
    # 违规扣款 is no policy figure: each unit deducts what the base run deducted (SPEC §9, §11).
    recovery = dict(stored.values_list("unit_code", "recovery"))
    if simulation.regathered:
        inputs = rule.simulation_gather(ctx, params, factors)
        new_codes = [code for code in inputs if code not in paid]
        if new_codes:
            paid.update(
                (code, q2(total or 0)) for code, total in
                Payment.objects.filter(scheme=run.scheme, year=run.year, unit_code__in=new_codes)
                .values_list("unit_code").annotate(total=Sum("amount")).values_list("unit_code", "total")
            )
        items = sorted(inputs.items())
    else:
        items = ((unit.unit_code, codec.decode(unit.inputs)) for unit in stored.iterator())
    total = len(paid) if not simulation.regathered else len(inputs)
    if simulation.job_id:
        jobs.set_total(simulation.job_id, total)
    Simulation.objects.filter(pk=simulation.pk).update(units_total=total, units_done=0)
    outcomes = []
    for index, (code, item) in enumerate(items, start=1):
        if on_inputs.used():
            item = rule.scale_inputs(item, on_inputs)
        outcome = rule.compute(item, params, paid.get(code, Decimal("0.00")))
        if not isinstance(outcome, UnitOutcome):
            raise TypeError("compute 未返回 UnitOutcome")
        outcome = outcome.deducting(recovery.get(code))
        outcomes.append(outcome)
        if index % PROGRESS_EVERY == 0:
            _progress(simulation, index)
    warnings = [f"{o.unit_name or o.unit_code}：{w}" for o in outcomes for w in o.warnings]
    warnings += list(rule.finish(ctx, params, outcomes) or [])
    return outcomes, warnings


def _progress(simulation, done):
    Simulation.objects.filter(pk=simulation.pk).update(units_done=done)
    if simulation.job_id:
        jobs.checkpoint(simulation.job_id, done)


def _store(simulation, outcomes, warnings):
    base = {r.unit_code: r for r in UnitResult.objects.filter(run_id=simulation.base_run_id)}
    rows = []
    for outcome in outcomes:
        result = base.pop(outcome.unit_code, None)
        row = SimulationUnit(simulation=simulation, unit_code=outcome.unit_code, unit_name=outcome.unit_name,
                             in_base=result is not None, details=codec.to_json_safe(outcome.details),
                             warnings=list(outcome.warnings))
        for field in FIGURE_FIELDS:
            setattr(row, field, getattr(outcome, field))
            if result is not None:
                setattr(row, f"base_{field}", getattr(result, field))
        rows.append(row)
    for result in base.values():  # in the base run, not found by the simulation's own gather
        row = SimulationUnit(simulation=simulation, unit_code=result.unit_code, unit_name=result.unit_name,
                             in_simulation=False)
        for field in FIGURE_FIELDS:
            setattr(row, f"base_{field}", getattr(result, field))
        rows.append(row)
    with transaction.atomic():
        current = Simulation.objects.select_for_update().filter(
            pk=simulation.pk, status=SimulationStatus.COMPUTING).first()
        if current is None:
            return
        if simulation.job_id:
            jobs.checkpoint(simulation.job_id, len(outcomes))  # a cancel before this point stores nothing
        SimulationUnit.objects.filter(simulation=simulation).delete()
        SimulationUnit.objects.bulk_create(sorted(rows, key=lambda r: r.unit_code), batch_size=1000)
        if not rows:
            warnings.append("没有需要模拟的单位")
        Simulation.objects.filter(pk=simulation.pk).update(
            status=SimulationStatus.COMPUTED, units_done=len(outcomes), warnings=warnings,
            finished_at=timezone.now(),
        )
        if simulation.job_id:
            jobs.finish(simulation.job_id, f"{simulation}完成：{len(rows)}个单位", counts={"units": len(rows)})


def _fail(simulation, reason):
    with transaction.atomic():
        Simulation.objects.filter(pk=simulation.pk, status__in=(SimulationStatus.QUEUED, SimulationStatus.COMPUTING)
                                  ).update(status=SimulationStatus.FAILED, failure_reason=reason,
                                           finished_at=timezone.now())
        if simulation.job_id:
            jobs.finish(simulation.job_id, reason, failed=True)


def settle_with_job(simulation):
    """A simulation still 排队中/计算中 whose job has ended failed (its worker declared dead by the
    sweep, which knows runs but not simulations) fails with the job's reason; returns it as it stands."""
    if simulation.status not in (SimulationStatus.QUEUED, SimulationStatus.COMPUTING) or not simulation.job_id:
        return simulation
    job = jobs.sweep_if_stale(simulation.job)
    if job.status == JobStatus.FAILED:
        _fail(simulation, job.message or "后台进程已中断，模拟未完成，请重新发起模拟")
        simulation.refresh_from_db()
    return simulation


# --- the command line ----------------------------------------------------------------------


def simulate_latest(scheme, year, region_code, assignments, user=None):
    """`simulate <scheme> --year Y [--region C] NAME=VALUE…` (SPEC §5): on the latest computed,
    approved or paid run of (scheme, year, region), computed here; returns the simulation."""
    check_scheme(scheme)
    year = check_year(year)
    check_region(region_code)
    run = latest_run(scheme, year, region_code)
    if run is None:
        where = f"区划{region_code}" if region_code else "全市"
        raise Refused(f"没有{year}年度{scheme_label(scheme)}（{where}）已计算的结算批次，请先运行 settle 再模拟")
    request = plan_from_assignments(run, assignments)
    simulation = start_simulation(run, request.changes, request.factors, user=user,
                                  note=f"命令行 simulate {' '.join(assignments)}", sync=True)
    if simulation.status != SimulationStatus.COMPUTED:
        raise Refused(simulation.failure_reason or f"{simulation}未能完成")
    return simulation


# --- reading ---------------------------------------------------------------------------------


def visible_units(simulation, user=None):
    units = simulation.units.order_by("unit_code")
    return restrict(units, user) if user is not None else units


def totals(units, largest=5):
    """Sums of base and simulated figures, units gaining and losing (by 年终清算金额), the largest changes."""
    units = list(units)
    sums = {}
    for field in FIGURE_FIELDS:
        base = sum((getattr(u, f"base_{field}") for u in units), Decimal("0.00"))
        simulated = sum((getattr(u, field) for u in units), Decimal("0.00"))
        sums[field] = {"base": base, "simulated": simulated, "difference": simulated - base}
    changes = [(u.difference("amount"), u) for u in units]
    ranked = sorted((c for c in changes if c[0] != 0), key=lambda c: (-abs(c[0]), c[1].unit_code))
    return {
        "sums": sums,
        # What the fund pays the units for the year: Σ E (for capitation including the claims' 统筹支付).
        "fund_outlay": sums["entitled"],
        "gaining": sum(1 for d, _ in changes if d > 0),
        "losing": sum(1 for d, _ in changes if d < 0),
        "unchanged": sum(1 for d, _ in changes if d == 0),
        "largest": [u for _, u in ranked[:largest]],
        "units": len(units),
    }


def comparison(simulations, user=None):
    """Side by side, per unit: the base run's 年终清算金额 and each simulation's, for simulations of one
    base run (the rows `user` may see)."""
    simulations = list(simulations)
    if len({s.base_run_id for s in simulations}) > 1:
        raise Refused("只能比较同一结算批次的模拟")
    rows = {}
    for index, simulation in enumerate(simulations):
        for unit in visible_units(simulation, user):
            row = rows.setdefault(unit.unit_code, {"unit_code": unit.unit_code, "unit_name": unit.unit_name,
                                                   "base": unit.base_amount, "amounts": [None] * len(simulations)})
            row["amounts"][index] = unit.amount
    for row in rows.values():
        row["differences"] = [None if a is None else a - row["base"] for a in row["amounts"]]
    return [rows[code] for code in sorted(rows)]
