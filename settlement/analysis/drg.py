"""DRG operating indices (SPEC §10), set-based over the year's DRG-scheme cases.

One statement: the per-case points of a DRG run (`drg.case_points_statement`, so points here are the
points the run paid), the city's per-group means and mortality, then one row per case carrying its
ratios to the city means, and GROUPING SETS aggregating those rows per institution, pool, group and
month in a single pass. Every index is an average of a per-case figure, which is what makes one pass
enough:

    CMI            = Σ RW / n                         = AVG(RW)                  (RW = 基准点数 / 100)
    费用消耗指数    = Σ_g n_g · (mean_ig / city_g) / Σ_g n_g = Σ_g (Σ cost_ig / city_g) / n
                                                      = AVG(cost / city mean of its group)
    时间消耗指数    = the same with length of stay

all over the cases whose group is in the year's catalogue; 病例数 counts every DRG-scheme case.
结算盈亏 = points × PV − 统筹支付, with PV the pool's point value in the latest computed (or approved,
or paid) DRG run of the year; without such a run it is unknown (None), never a guess.
"""
import dataclasses
import datetime
from decimal import Decimal

from django.db.models import F

from alliances.models import InstitutionLevel
from settlement.audit.params import AuditParams
from settlement.audit.services import AuditError, audit_parameters
from settlement.engine.case_review_services import approved_points
from settlement.engine.models import RunStatus, SettlementRun, UnitResult
from settlement.engine.params import from_json
from settlement.engine.schemes import drg as drg_scheme
from settlement.engine.schemes.inpatient_common import fetch_dicts, region_filter_sql
from settlement.models import DrgGroup, Scheme

ZERO = Decimal("0")
RUN_STATUSES = (RunStatus.COMPUTED, RunStatus.APPROVED, RunStatus.PAID)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """HIC01's multiples of 病组均次费用 (SPEC §9) and the low multiple of §10: the year's `audit`
    policy parameters (thresholds_for), so the analysis counts what the audit flags."""

    high_multiple_tertiary: Decimal
    high_multiple_other: Decimal
    low_multiple: Decimal

    def as_json(self):
        return {name: str(value) for name, value in dataclasses.asdict(self).items()}


def thresholds_for(year) -> tuple[Thresholds, str | None]:
    """The multiples of the year's approved city-wide `audit` policy (its defaults when there is none),
    and a note for the page when a draft policy could not be used."""
    note = None
    try:
        _, params = audit_parameters(year)
    except AuditError as exc:
        params, note = from_json(AuditParams, {}), f"{exc}；高低倍率暂按默认阈值计算"
    return Thresholds(params.high_multiple_tertiary, params.high_multiple_other, params.drg_low_multiple), note


# The aggregation levels a caller may ask for, as GROUPING SETS columns.
SETS = {
    "institution": ("institution_id",),
    "pool": ("pool_code",),
    "institution_group": ("institution_id", "drg_code"),
    "pool_group": ("pool_code", "drg_code"),
    "institution_month": ("institution_id", "month"),
    "pool_month": ("pool_code", "month"),
}
_KEYS = ("institution_id", "pool_code", "drg_code", "month")


@dataclasses.dataclass(frozen=True)
class Indices:
    """One row of the analysis: an institution, a pool, either one per group or per month."""

    level: str  # a key of SETS
    institution_id: int | None
    pool_code: str | None
    drg_code: str | None
    month: int | None
    cases: int  # 病例数: every DRG-scheme case
    grouped_cases: int  # cases with a group in the year's catalogue
    groups: int  # DRG组数
    grouping_rate: Decimal | None  # 入组率
    cmi: Decimal | None
    cost_index: Decimal | None  # 费用消耗指数
    time_index: Decimal | None  # 时间消耗指数
    low_risk_cases: int
    low_risk_deaths: int
    low_risk_mortality: Decimal | None  # 低风险组死亡率
    high_cases: int  # 高倍率病例数
    low_cases: int  # 低倍率病例数
    total_cost: Decimal
    los_days: int
    points: Decimal
    fund_paid: Decimal
    personal_paid: Decimal
    point_value: Decimal | None
    balance: Decimal | None  # 结算盈亏

    @property
    def mean_cost(self):
        return (self.total_cost / self.cases).quantize(Decimal("0.01")) if self.cases else None

    @property
    def payment(self):
        """DRG payment: points × PV, rounded to 分 (the run's Q)."""
        return None if self.point_value is None else drg_scheme.q2(self.points * self.point_value)


def q4_or_none(value):
    return None if value is None else drg_scheme.q4(value)


@dataclasses.dataclass(frozen=True)
class Basis:
    """What the analysis of a year reads: the DRG runs' parameters and the pools' PV, and the audit
    policy's high/low multiples."""

    year: int
    params: drg_scheme.DrgParams
    run: SettlementRun | None
    point_values: dict  # pool code → PV
    thresholds: Thresholds
    note: str | None = None  # why the thresholds are not the policy's


def basis(year) -> Basis:
    """The latest computed / approved / paid DRG run of the year (any region) gives the pooling and
    the parameters; each pool's PV is taken from the latest such run that settled it."""
    runs = SettlementRun.objects.filter(scheme=Scheme.DRG, year=year, status__in=RUN_STATUSES)
    run = runs.order_by(F("finished_at").desc(nulls_last=True), "-pk").first()
    params = from_json(drg_scheme.DrgParams, run.parameters) if run else drg_scheme.DrgParams()
    point_values = {}
    results = (
        UnitResult.objects.filter(run__in=runs)
        .order_by(F("run__finished_at").desc(nulls_last=True), "-run_id")
        .values_list("details__pool_code", "details__point_value")
    )
    for pool_code, value in results:
        if pool_code and value is not None and pool_code not in point_values:
            point_values[pool_code] = Decimal(str(value))
    thresholds, note = thresholds_for(year)
    return Basis(year=year, params=params, run=run, point_values=point_values, thresholds=thresholds, note=note)


def _statement(year, params, sets, thresholds, *, pool_code=None, region_code=None, institution_ids=None):
    first_day, last_day = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
    cases_sql, query = drg_scheme.case_points_statement(year, first_day, last_day, params, approved_points(year))
    pool_from, pool_expr = drg_scheme.pool_code_sql()
    grouping = ", ".join("(" + ", ".join(SETS[name]) + ")" for name in sets)
    filters = [region_filter_sql("inst.county_code", "inst.parent_code")]
    if pool_code is not None:
        filters.append("inst.pool_code = %(pool_code)s")
    if institution_ids is not None:
        filters.append("c.institution_id = ANY(%(institution_ids)s::bigint[])")
    city = _city_groups(cases_sql, query)
    sql = f"""{cases_sql},
    inst AS (
        SELECT i.id AS institution_id, i.level, r.code AS county_code, r.parent_code, {pool_expr} AS pool_code
          FROM alliances_institution i {pool_from}
    ),
    city AS (
        SELECT * FROM unnest(%(city_codes)s::text[], %(city_costs)s::numeric[], %(city_los)s::numeric[],
                             %(city_low_risk)s::boolean[]) AS city(drg_code, mean_cost, mean_los, low_risk)
    ),
    x AS (
        SELECT c.institution_id, inst.pool_code, c.drg_code, EXTRACT(MONTH FROM c.discharge_date)::int AS month,
               c.grouped, c.base_points / 100 AS rw,
               c.total_cost / NULLIF(city.mean_cost, 0) AS cost_ratio,
               c.los / NULLIF(city.mean_los, 0) AS los_ratio,
               COALESCE(city.low_risk, FALSE) AS low_risk, c.discharge_mode = '5' AS died,
               c.grouped AND c.total_cost > c.average_cost * CASE WHEN inst.level = %(tertiary)s
                   THEN %(high_tertiary)s ELSE %(high_other)s END AS high,
               c.grouped AND c.total_cost < c.average_cost * %(low_multiple)s AS low,
               c.points, c.fund_paid, c.personal_paid, c.total_cost, c.los
          FROM cases c
          JOIN inst ON inst.institution_id = c.institution_id
          LEFT JOIN city ON c.grouped AND city.drg_code = c.drg_code
         WHERE {" AND ".join(filters)}
    )
    SELECT {", ".join(_key_columns(sets))},
           COUNT(*) AS cases,
           COUNT(*) FILTER (WHERE grouped) AS grouped_cases,
           COUNT(DISTINCT drg_code) FILTER (WHERE grouped) AS groups,
           AVG(rw) FILTER (WHERE grouped) AS cmi,
           AVG(cost_ratio) FILTER (WHERE grouped) AS cost_index,
           AVG(los_ratio) FILTER (WHERE grouped) AS time_index,
           COUNT(*) FILTER (WHERE low_risk) AS low_risk_cases,
           COUNT(*) FILTER (WHERE low_risk AND died) AS low_risk_deaths,
           COUNT(*) FILTER (WHERE high) AS high_cases,
           COUNT(*) FILTER (WHERE low) AS low_cases,
           COALESCE(SUM(total_cost), 0) AS total_cost, COALESCE(SUM(los), 0) AS los_days,
           COALESCE(SUM(points), 0) AS points, COALESCE(SUM(fund_paid), 0) AS fund_paid,
           COALESCE(SUM(personal_paid), 0) AS personal_paid
      FROM x
     GROUP BY GROUPING SETS ({grouping})
    """
    t = thresholds
    query = query | {
        "city_codes": [row["drg_code"] for row in city], "city_costs": [row["mean_cost"] for row in city],
        "city_los": [row["mean_los"] for row in city], "city_low_risk": [row["low_risk"] for row in city],
        "region_code": region_code, "pool_code": pool_code, "institution_ids": list(institution_ids or []),
        "tertiary": InstitutionLevel.TERTIARY.value, "high_tertiary": t.high_multiple_tertiary,
        "high_other": t.high_multiple_other, "low_multiple": t.low_multiple,
    }
    return sql, query


def _city_groups(cases_sql, query):
    """Per group of the catalogue, over all of the city's DRG-scheme cases of the year: mean cost, mean
    length of stay and whether it is a 低风险组 (its mortality more than one population SD below the mean
    of the groups' rates). A statement of its own, handed to the main one as arrays: were `cases`
    referenced twice in one statement, PostgreSQL would materialise it in one process instead of
    scanning it in parallel workers (the readmitted ids of drg.py travel the same way)."""
    return fetch_dicts(f"""{cases_sql},
    city AS (
        SELECT drg_code, AVG(total_cost) AS mean_cost, AVG(los) AS mean_los,
               AVG(CASE WHEN discharge_mode = '5' THEN 1 ELSE 0 END) AS mortality
          FROM cases WHERE grouped GROUP BY drg_code
    )
    SELECT drg_code, mean_cost, mean_los,
           mortality < (SELECT AVG(mortality) - STDDEV_POP(mortality) FROM city) AS low_risk
      FROM city ORDER BY drg_code""", query, year_scale=True)


def _key_columns(sets):
    """Each key with its GROUPING() flag; a key in none of the sets is NULL and flagged (GROUPING() may
    only name a grouped column)."""
    used = {column for name in sets for column in SETS[name]}
    return [f"GROUPING({k}) AS g_{k}, {k}" if k in used else f"1 AS g_{k}, NULL AS {k}" for k in _KEYS]


def _level_of(row):
    present = tuple(k for k in _KEYS if not row[f"g_{k}"])
    return next(name for name, columns in SETS.items() if columns == present)


def indices(year, sets=("institution", "pool"), *, pool_code=None, region_code=None, institution_ids=None,
            the_basis=None) -> list[Indices]:
    """The indices of the year at the requested aggregation levels (keys of SETS), restricted to one
    pool, a region (county or city code) and/or some institutions. City means, the low-risk groups
    and the pools' PV always come from the whole city, whatever the restriction."""
    the_basis = the_basis or basis(year)
    sql, query = _statement(year, the_basis.params, sets, the_basis.thresholds, pool_code=pool_code,
                            region_code=region_code, institution_ids=institution_ids)
    rows = fetch_dicts(sql, query, year_scale=True)
    for row in rows:
        row["level"] = _level_of(row)
        for name in ("cmi", "cost_index", "time_index"):
            row[name] = q4_or_none(row[name])
    return from_rows(rows, the_basis)


def from_rows(rows, the_basis) -> list[Indices]:
    """Indices from rows of figures (the statement's, or the pre-aggregates', which hold the same),
    with each row's pool resolved and its 结算盈亏 at the pool's PV."""
    pools = _institution_pools(the_basis.params, {row["institution_id"] for row in rows
                                                  if row["institution_id"] and not row["pool_code"]})
    result = []
    for row in rows:
        pool = row["pool_code"] or pools.get(row["institution_id"])
        pv = the_basis.point_values.get(pool)
        payment = None if pv is None else drg_scheme.q2(row["points"] * pv)
        result.append(Indices(
            level=row["level"], institution_id=row["institution_id"], pool_code=pool, drg_code=row["drg_code"],
            month=row["month"], cases=row["cases"], grouped_cases=row["grouped_cases"], groups=row["groups"],
            grouping_rate=q4_or_none(Decimal(row["grouped_cases"]) / row["cases"]) if row["cases"] else None,
            cmi=row["cmi"], cost_index=row["cost_index"], time_index=row["time_index"],
            low_risk_cases=row["low_risk_cases"], low_risk_deaths=row["low_risk_deaths"],
            low_risk_mortality=(q4_or_none(Decimal(row["low_risk_deaths"]) / row["low_risk_cases"])
                                if row["low_risk_cases"] else None),
            high_cases=row["high_cases"], low_cases=row["low_cases"], total_cost=row["total_cost"],
            los_days=row["los_days"], points=row["points"], fund_paid=row["fund_paid"],
            personal_paid=row["personal_paid"], point_value=pv,
            balance=None if payment is None else payment - row["fund_paid"],
        ))
    return result


def _institution_pools(params, institution_ids):
    """institution id → pool code, under the run's pooling."""
    if not institution_ids:
        return {}
    pool_from, pool_expr = drg_scheme.pool_code_sql()
    rows = fetch_dicts(
        f"SELECT i.id, {pool_expr} AS pool_code FROM alliances_institution i {pool_from} WHERE i.id = ANY(%(ids)s)",
        {"pool_mode": params.pool_mode, "ids": list(institution_ids)},
    )
    return {row["id"]: row["pool_code"] for row in rows}


def pool_codes(year, the_basis=None, region_code=None, institution_ids=None) -> list[str]:
    """The pools of the institutions with inpatient cases (other than bed-day) discharged in the year,
    within a region or some institutions: one GROUP BY over the year's cases, not the points statement,
    because every page view asks for it."""
    the_basis = the_basis or basis(year)
    pool_from, pool_expr = drg_scheme.pool_code_sql()
    rows = fetch_dicts(f"""
        SELECT DISTINCT {pool_expr} AS pool_code
          FROM (SELECT institution_id FROM settlement_inpatientcase
                 WHERE discharge_date BETWEEN %(first_day)s AND %(last_day)s AND bed_day_category = ''
                 GROUP BY institution_id) k
          JOIN alliances_institution i ON i.id = k.institution_id {pool_from}
         WHERE {region_filter_sql("r.code", "r.parent_code")}
           AND (%(all_institutions)s OR i.id = ANY(%(institution_ids)s::bigint[]))
         ORDER BY 1""", {
        "pool_mode": the_basis.params.pool_mode, "first_day": datetime.date(year, 1, 1),
        "last_day": datetime.date(year, 12, 31), "region_code": region_code,
        "all_institutions": institution_ids is None, "institution_ids": list(institution_ids or []),
    })
    return [row["pool_code"] for row in rows]


def cumulative_point_values(year, pool_code, monthly_rows, budget) -> dict[int, Decimal | None]:
    """month → the pool's point value on the cases discharged so far, with the budget taken pro rata:
    PV_m = (B × m / 12 + Σ_{≤m} 个人负担) / Σ_{≤m} points, 6 places. At month 12 it is the year's PV
    formula of §6.5 on the year's cases, so the line ends where the settlement lands.

    `monthly_rows` are the pool's `pool_month` rows."""
    by_month = {row.month: row for row in monthly_rows}
    points = personal = ZERO
    out = {}
    for month in range(1, 13):
        row = by_month.get(month)
        if row is not None:
            points += row.points
            personal += row.personal_paid
        if budget is None or points <= 0:
            out[month] = None
        else:
            out[month] = drg_scheme.q6((budget * month / 12 + personal) / points)
    return out


def group_names(year) -> dict[str, str]:
    return dict(DrgGroup.objects.filter(year=year).values_list("code", "name"))


def group_average_costs(year) -> dict[str, Decimal]:
    return dict(DrgGroup.objects.filter(year=year).values_list("code", "average_cost"))
