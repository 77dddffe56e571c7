"""DRG points under a global budget (SPEC §6.5; HZ §3, SX §2(2), KF §4(1)2).

Unit = institution; institutions share a pool's budget B through the pool's point value:

    PV = (B + Σ personal_paid of the pool's cases) / Σ points            (6 places)
    Q  = q2(points × PV)       E = q2(points × PV − personal_paid)       A = Σ 统筹支付

Per-case points are computed in SQL, not in a Python pass over fetched rows: pulling 500,000 rows of
Decimals into Python costs more than the whole computation in the database. Two statements:
1. `_READMITTED_SQL`: the ids of the cases whose person was admitted again to the same group within N
   days (a parallel hash semi-join on person and group over the whole city, since the readmission may
   be at any institution, and N days into the next year);
2. `_CASE_POINTS_SQL` + `_INSTITUTION_POINTS_SQL`: one parallel scan applying the SPEC's steps in order
   — TCM uplift, coefficient, complete / incomplete stay / bed-day group, approved points, readmission
   — rounding each case once to 4 places (PostgreSQL's ROUND(numeric) rounds half away from zero, which
   is half-up for non-negative points), then summing per institution; the pool totals are a window over
   those ~1,000 rows. A window function over the cases would pin the per-case arithmetic to one
   process, which is why the readmission is a statement of its own whose ids come back as a constant
   array (PostgreSQL tests `id = ANY(constant array)` with a hash table).
Python sees one row per institution; compute is pure Decimal. `bench/drg_bench.py` measures it.

Approved points (特病单议 / 新技术) and their source are not modelled yet: `DrgRule.approved_points`
is the single hook that will read the approved requests; every function takes them as a plain
``case id → points`` mapping.
"""
import dataclasses
import datetime
from decimal import Decimal
from typing import Mapping

from django.db import connection, transaction

from alliances.models import InstitutionLevel
from settlement.models import Budget, Scheme

from ..base import RunContext, SchemeRule, UnitOutcome, q2, q4, q6, register
from .inpatient_common import (
    DRG, REGIONS_SQL, InpatientRecovery, SchemeInputError, classified_cases_sql, fetch_dicts, region_filter_sql, roomy,
)

POOL_MODES = ("county_band", "city")
HALF_CENT = Decimal("0.005")
HALF_PV_UNIT = Decimal("0.0000005")


@dataclasses.dataclass(frozen=True)
class DrgParams:
    """Policy parameters of §6.5 (defaults: HZ 中医扶持 +8%, SX readmission 10 days halved)."""

    # county × level band pools (KF), code `<区划代码>-<等级段>`; or "city": one pool for the whole city,
    # whose budget row is keyed by the city's 区划代码 (a band would not fit a pool spanning both bands)
    pool_mode: str = dataclasses.field(
        default="county_band", metadata={"label": "统筹池方式", "choices": POOL_MODES,
                                          "choice_labels": {"county_band": "按县区×机构等级段分池", "city": "全市一个统筹池"}},
    )
    tcm_uplift: Decimal = dataclasses.field(  # 中医扶持组 基础点数上浮 8% [HZ]
        default=Decimal("1.08"), metadata={"label": "中医扶持组点数上浮系数", "min": Decimal("1")},
    )
    readmission_days: int = dataclasses.field(  # 出院后10日内再次以同一病组住院 [SX], inclusive
        default=10, metadata={"label": "同病组再入院天数", "min": 0},
    )
    readmission_factor: Decimal = dataclasses.field(  # 前次住院 CW 减半 [SX]
        default=Decimal("0.5"), metadata={"label": "再入院前次病例点数系数", "min": Decimal("0"), "max": Decimal("1")},
    )
    prepayment_ratio: Decimal = dataclasses.field(  # monthly pre-settlement at 85–95% (§6.5)
        default=Decimal("0.90"), metadata={"label": "月度预拨比例", "min": Decimal("0.85"), "max": Decimal("0.95")},
    )
    trimming: str = dataclasses.field(  # base-point 测算: Tukey fences per group
        default="iqr", metadata={"label": "测算裁剪方法", "choices": ("iqr",), "choice_labels": {"iqr": "四分位距法"}},
    )
    iqr_factor: Decimal = dataclasses.field(default=Decimal("1.5"), metadata={"label": "四分位距倍数", "min": Decimal("0")})
    cv_threshold: Decimal = dataclasses.field(  # 组内变异系数 CV ≤ 1 [SX]
        default=Decimal("1"), metadata={"label": "组内变异系数上限", "min": Decimal("0")},
    )

    def __post_init__(self):
        if self.pool_mode not in POOL_MODES:
            raise ValueError(f"统筹池方式应为 {POOL_MODES} 之一")
        if not Decimal("0.85") <= Decimal(self.prepayment_ratio) <= Decimal("0.95"):
            raise ValueError("月度预拨比例应在85%至95%之间")
        if self.trimming != "iqr":
            raise ValueError("目前仅支持四分位距（IQR）裁剪")
        if self.readmission_days < 0:
            raise ValueError("再入院天数不能为负数")


# --- Per-case points ------------------------------------------------------------------------

# The band of each level comes from InstitutionLevel.band, so the SQL never restates it.
_BANDS_SQL = "(VALUES {}) AS band(level, band)".format(
    ", ".join(f"('{level}', '{InstitutionLevel.band(level)}')" for level in InstitutionLevel.values)
)

# Readmissions: the cases discharged in [first_day, last_day] after which the same person was admitted
# to the same group as a DRG case 0–N days later, at any institution (so over the whole city, and into
# the next year: the later stay is bounded by its admission, not its discharge). A semi-join on
# (person, group) rather than a window function: the join runs in parallel workers, a window would
# sort every case of the year in one process, and "some later admission within N days" is the SPEC's
# wording. Parameters: date_from/date_to (discharges of the later cases: first_day .. open), first_day,
# last_day, last_admission (last_day + N), readmission_days.
_READMITTED_SQL = f"""
    SELECT a.id FROM settlement_inpatientcase a
     WHERE a.discharge_date BETWEEN %(first_day)s AND %(last_day)s
       AND a.drg_code <> '' AND a.bed_day_category = ''
       AND (%(institution_id)s::bigint IS NULL OR a.institution_id = %(institution_id)s)
       AND EXISTS (
           SELECT 1 FROM ({classified_cases_sql(DRG)}) b
            WHERE b.person_id = a.person_id AND b.drg_code = a.drg_code AND b.id <> a.id
              AND b.admission_date <= %(last_admission)s
              AND b.admission_date - a.discharge_date BETWEEN 0 AND %(readmission_days)s)
"""

_APPROVED_JOIN = """LEFT JOIN unnest(%(ap_ids)s::bigint[], %(ap_points)s::numeric[]) AS ap(case_id, points)
                 ON ap.case_id = k.id"""


def _without_approved_points(sql: str) -> str:
    """The statement for a year without approved points: even an empty join costs a probe per case."""
    return sql.replace(_APPROVED_JOIN, "").replace("ap.points AS approved_points", "NULL::numeric AS approved_points")


# Per-case points in the SPEC's order. Parameters: date_from/date_to (= the settled discharge range),
# year (groups, coefficients), base_points_factor (1 except in a simulation, SPEC §11), tcm_uplift,
# readmission_factor, rd_ids (readmitted earlier cases), ap_ids/ap_points (approved points).
_CASE_POINTS_SQL = f"""
    WITH factors AS (
        SELECT k.id, k.institution_id, k.serial, k.drg_code, k.admission_date, k.discharge_date, k.los,
               k.incomplete_stay, k.total_cost, k.fund_paid, k.personal_paid, k.discharge_mode,
               g.id IS NOT NULL AS grouped, g.base_points * %(base_points_factor)s AS base_points, g.average_cost,
               g.bed_day_points,
               COALESCE(g.tcm_support, FALSE) AS tcm_support, COALESCE(g.same_price, FALSE) AS same_price,
               g.base_points * %(base_points_factor)s
                 * CASE WHEN g.tcm_support THEN %(tcm_uplift)s ELSE 1 END AS base_adj,
               CASE WHEN g.same_price THEN 1::numeric ELSE COALESCE(co.coefficient, 1::numeric) END AS coefficient,
               ap.points AS approved_points,
               k.id = ANY(%(rd_ids)s::bigint[]) AS readmitted
          FROM ({classified_cases_sql(DRG)}) k
          LEFT JOIN settlement_drggroup g ON g.year = %(year)s AND g.code = k.drg_code
          LEFT JOIN settlement_drgcoefficient co ON co.year = %(year)s AND co.institution_id = k.institution_id
          {_APPROVED_JOIN}
    ),
    computed AS (
        SELECT f.*,
               CASE WHEN NOT f.grouped THEN NULL
                    WHEN f.bed_day_points IS NOT NULL THEN f.bed_day_points * f.los
                    WHEN f.incomplete_stay THEN LEAST(
                        f.base_adj,
                        COALESCE(f.base_adj * f.coefficient * f.total_cost / NULLIF(f.average_cost, 0), f.base_adj))
                    ELSE f.base_adj * f.coefficient
               END AS computed_points
          FROM factors f
    ),
    cases AS (
        SELECT c.*,
               ROUND(COALESCE(c.approved_points, c.computed_points, 0)
                     * CASE WHEN c.readmitted THEN %(readmission_factor)s ELSE 1 END, 4) AS points
          FROM computed c
    )
"""

_POOL_CODE_SQL = """
    CASE WHEN %(pool_mode)s = 'city' THEN r.city_code ELSE r.code || '-' || band.band END
"""

_INSTITUTION_POINTS_SQL = f"""
    {_CASE_POINTS_SQL},
    per_institution AS (
        SELECT institution_id, COUNT(*) AS cases, SUM(points) AS points,
               SUM(personal_paid) AS personal_paid, SUM(fund_paid) AS fund_paid,
               COUNT(*) FILTER (WHERE NOT grouped AND approved_points IS NULL) AS ungrouped_cases,
               COUNT(*) FILTER (WHERE readmitted) AS readmitted_cases,
               COUNT(*) FILTER (WHERE approved_points IS NOT NULL) AS approved_cases,
               COUNT(*) FILTER (WHERE incomplete_stay) AS incomplete_cases
          FROM cases GROUP BY institution_id
    ),
    pooled AS (
        SELECT i.code AS unit_code, i.name AS unit_name, r.code AS county_code, r.parent_code,
               {_POOL_CODE_SQL} AS pool_code, p.*
          FROM per_institution p
          JOIN alliances_institution i ON i.id = p.institution_id
          JOIN ({REGIONS_SQL}) r ON r.id = i.county_id
          JOIN {_BANDS_SQL} ON band.level = i.level
    )
    SELECT pooled.*,
           SUM(points) OVER (PARTITION BY pool_code) AS pool_points,
           SUM(personal_paid) OVER (PARTITION BY pool_code) AS pool_personal_paid,
           COUNT(*) OVER (PARTITION BY pool_code) AS pool_institutions
      FROM pooled
"""


def _case_params(year, first_day, last_day, params: DrgParams, approved_points: Mapping[int, Decimal] | None,
                 base_points_factor=Decimal("1"), institution_id=None):
    """The parameters of the per-case statement, including the readmitted cases (its first query); with
    `institution_id`, only that institution's cases are looked up as readmitted (a unit page reads no others)."""
    approved = dict(approved_points or {})
    return {
        "date_from": first_day,
        "date_to": last_day,
        "year": year,
        "base_points_factor": Decimal(base_points_factor),
        "tcm_uplift": Decimal(params.tcm_uplift),
        "readmission_factor": Decimal(params.readmission_factor),
        "rd_ids": readmitted_case_ids(first_day, last_day, params, institution_id),
        "ap_ids": list(approved),
        "ap_points": [Decimal(value) for value in approved.values()],
        "pool_mode": params.pool_mode,
    }


def readmitted_case_ids(first_day, last_day, params: DrgParams, institution_id=None) -> list[int]:
    """Ids of the DRG cases discharged in the range whose points the readmission rule reduces (of one
    institution's cases when `institution_id` is given; the later stay may be anywhere)."""
    query = {
        "institution_id": institution_id,
        "date_from": first_day,
        "date_to": datetime.date.max,
        "first_day": first_day,
        "last_day": last_day,
        "last_admission": last_day + datetime.timedelta(days=params.readmission_days),
        "readmission_days": params.readmission_days,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        roomy(cursor)
        cursor.execute(_READMITTED_SQL, query)
        return [row[0] for row in cursor.fetchall()]


def institution_points(year, first_day, last_day, params: DrgParams, approved_points=None, region_code=None,
                       base_points_factor=Decimal("1")):
    """One row per institution with DRG cases discharged in [first_day, last_day]: its points and money
    sums, its pool code and the pool's totals (computed before the region filter, so a county run sees
    whole pools)."""
    sql = f"SELECT * FROM ({_INSTITUTION_POINTS_SQL}) x WHERE {region_filter_sql('x.county_code', 'x.parent_code')}"
    if not approved_points:
        sql = _without_approved_points(sql)
    query = _case_params(year, first_day, last_day, params, approved_points, base_points_factor) | {
        "region_code": region_code}
    return fetch_dicts(sql + " ORDER BY pool_code, unit_code", query, year_scale=True)


def case_points_statement(year, first_day, last_day, params: DrgParams, approved_points=None) -> tuple[str, dict]:
    """The per-case points statement up to its `cases` CTE (one row per DRG-scheme case of the range with
    its group's figures and points, exactly as a run counts them) and its parameters, for readers that
    aggregate the cases their own way (the operating analysis, SPEC §10). The caller appends
    `, more AS (...) SELECT ...`; %(pool_mode)s is among the parameters, `pool_code_sql` uses it."""
    sql = _CASE_POINTS_SQL if approved_points else _without_approved_points(_CASE_POINTS_SQL)
    return sql, _case_params(year, first_day, last_day, params, approved_points)


def pool_code_sql() -> tuple[str, str]:
    """(FROM fragment, expression) giving each institution `i` its pool code: joins the regions as `r`
    and the level bands as `band`, as a run's gather does."""
    return f"JOIN ({REGIONS_SQL}) r ON r.id = i.county_id JOIN {_BANDS_SQL} ON band.level = i.level", _POOL_CODE_SQL


def case_derivation(ctx: RunContext, params: DrgParams, institution_id: int, approved_points=None) -> list[dict]:
    """Each DRG case of the institution and year with every factor of its points, for the unit page:
    base, TCM uplift, coefficient, stay type, bed-day points, approved points, readmission, points."""
    sql = f"""{_CASE_POINTS_SQL}
        SELECT id, serial, drg_code, admission_date, discharge_date, los, total_cost, fund_paid, personal_paid,
               grouped, base_points, tcm_support, base_adj, same_price, coefficient, incomplete_stay,
               average_cost, bed_day_points, computed_points, approved_points, readmitted,
               CASE WHEN readmitted THEN %(readmission_factor)s ELSE 1 END AS readmission_factor, points
          FROM cases WHERE institution_id = %(institution_id)s ORDER BY discharge_date, serial"""
    if not approved_points:
        sql = _without_approved_points(sql)
    query = _case_params(ctx.year, ctx.first_day, ctx.last_day, params, approved_points, institution_id=institution_id)
    return fetch_dicts(sql, query | {"institution_id": institution_id}, year_scale=True)


# --- Gather -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DrgInputs:
    unit_code: str  # institution code
    unit_name: str
    pool_code: str
    budget: Decimal  # B of the pool
    pool_points: Decimal
    pool_personal_paid: Decimal
    pool_institutions: int
    cases: int
    points: Decimal
    personal_paid: Decimal
    fund_paid: Decimal
    ungrouped_cases: int = 0
    readmitted_cases: int = 0
    approved_cases: int = 0
    incomplete_cases: int = 0


def pool_budgets(year) -> dict[str, Decimal]:
    """Pool code → B. A row with empty 险种 is the pool's total; otherwise the 职工 and 居民 rows add up."""
    totals, by_type = {}, {}
    for unit_code, insurance_type, amount in Budget.objects.filter(year=year, scheme=Scheme.DRG).values_list(
        "unit_code", "insurance_type", "amount",
    ):
        if insurance_type:
            by_type[unit_code] = by_type.get(unit_code, Decimal("0")) + amount
        else:
            totals[unit_code] = amount
    return by_type | totals


def gather_drg(ctx: RunContext, params: DrgParams, approved_points=None, base_points_factor=Decimal("1"),
               ) -> dict[str, DrgInputs]:
    budgets = pool_budgets(ctx.year)
    rows = institution_points(ctx.year, ctx.first_day, ctx.last_day, params, approved_points, ctx.region_code,
                              base_points_factor)
    missing = sorted({row["pool_code"] for row in rows} - set(budgets))
    if missing:
        raise SchemeInputError(f"{ctx.year}年度以下DRG统筹池没有预算额度，无法计算点值：{'、'.join(missing)}")
    fields = {field.name for field in dataclasses.fields(DrgInputs)}
    return {
        row["unit_code"]: DrgInputs(budget=budgets[row["pool_code"]], **{k: v for k, v in row.items() if k in fields})
        for row in rows
    }


# --- Compute (pure) -----------------------------------------------------------------------------


def point_value(budget: Decimal, pool_personal_paid: Decimal, pool_points: Decimal) -> Decimal:
    """PV = (B + patient-borne cost of the pool's cases) / total points, 6 places (SPEC §6.5)."""
    if pool_points <= 0:
        return Decimal("0.000000")
    return q6((budget + pool_personal_paid) / pool_points)


def compute_drg(inputs: DrgInputs, params: DrgParams, paid: Decimal) -> UnitOutcome:
    pv = point_value(inputs.budget, inputs.pool_personal_paid, inputs.pool_points)
    quota = q2(inputs.points * pv)
    entitled = q2(inputs.points * pv - inputs.personal_paid)
    actual = q2(inputs.fund_paid)
    # The unit's part of S is what it gains or loses against being paid its claims' 统筹支付 (E − A,
    # the convention of §6.3–§6.4): points × PV − total cost of its cases. The pool's budget is fixed
    # (Σ E = B), so the fund shares none of it; the remainder S − (E − A) = Q − E is exactly the
    # patient-borne cost of its cases, which Q includes and A does not. It is reported as the fund's
    # part only because the identity S = unit part + fund part must hold.
    unit_part = entitled - actual
    warnings = []
    if inputs.ungrouped_cases:
        warnings.append(
            f"{inputs.unit_name}有{inputs.ungrouped_cases}例病例未入DRG病组且无特病单议核定点数，按0点计算",
        )
    if inputs.pool_points <= 0:
        warnings.append(f"统筹池{inputs.pool_code}总点数为0，无法计算点值")
    return UnitOutcome.settle(
        unit_code=inputs.unit_code,
        unit_name=inputs.unit_name,
        quota=quota,
        actual=actual,
        unit_part=unit_part,
        entitled=entitled,
        paid=paid,
        details={
            "pool_code": inputs.pool_code,
            "pool_budget": inputs.budget,
            "pool_points": inputs.pool_points,
            "pool_personal_paid": inputs.pool_personal_paid,
            "pool_institutions": inputs.pool_institutions,
            "point_value": pv,
            "cases": inputs.cases,
            "points": inputs.points,
            "personal_paid": inputs.personal_paid,
            "fund_paid": inputs.fund_paid,
            "ungrouped_cases": inputs.ungrouped_cases,
            "readmitted_cases": inputs.readmitted_cases,
            "approved_cases": inputs.approved_cases,
            "incomplete_cases": inputs.incomplete_cases,
        },
        warnings=tuple(warnings),
    )


def budget_tolerance(institutions: int, pool_points: Decimal) -> Decimal:
    """How far Σ E of a pool may drift from B through rounding alone: each E is rounded to 分 (½ 分
    each) and PV to 6 places (½ × 10⁻⁶ per point, over all the pool's points)."""
    return institutions * HALF_CENT + pool_points * HALF_PV_UNIT


def check_pool_budgets(outcomes: list[UnitOutcome]) -> list[str]:
    """Pure: Σ E over each pool against its budget B, within rounding (SPEC §6.5 "Σ over the pool = B").

    The engine may hand back outcomes rebuilt from stored results, whose details hold Decimals as
    strings; hence the conversions."""
    pools: dict[str, list[UnitOutcome]] = {}
    for outcome in outcomes:
        pools.setdefault(outcome.details["pool_code"], []).append(outcome)
    warnings = []
    for pool_code, members in sorted(pools.items()):
        first = members[0].details
        if int(first["pool_institutions"]) != len(members):
            continue  # a county run of a city pool holds only part of the pool: nothing to compare
        budget = Decimal(str(first["pool_budget"]))
        total = sum((Decimal(str(outcome.entitled)) for outcome in members), Decimal("0"))
        gap = total - budget
        if abs(gap) > budget_tolerance(len(members), Decimal(str(first["pool_points"]))):
            warnings.append(f"统筹池{pool_code}各机构应得金额合计{total}与预算{budget}相差{gap}，超出舍入误差")
    return warnings


# --- Base points 测算 (proposals only) ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GroupCostStats:
    """A group's trimmed cost statistics, from SQL: count, Σ cost, Σ cost² (exact numerics)."""

    drg_code: str
    cases_before_trim: int
    cases: int
    cost_sum: Decimal
    cost_sum_squares: Decimal
    lower_fence: Decimal | None = None
    upper_fence: Decimal | None = None


@dataclasses.dataclass(frozen=True)
class BasePointProposal:
    drg_code: str
    cases_before_trim: int
    cases: int
    average_cost: Decimal
    base_points: Decimal
    cv: Decimal
    cv_exceeded: bool


def iqr_fences(q1: Decimal, q3: Decimal, factor: Decimal = Decimal("1.5")) -> tuple[Decimal, Decimal]:
    """Tukey fences [Q1 − k·IQR, Q3 + k·IQR]; costs outside are trimmed."""
    iqr = q3 - q1
    return q1 - factor * iqr, q3 + factor * iqr


def propose_base_points(stats: list[GroupCostStats], cv_threshold: Decimal) -> list[BasePointProposal]:
    """Pure: base points = group average cost / average cost of all trimmed cases × 100 (4 places);
    CV = population standard deviation / mean of the trimmed costs, flagged over the threshold."""
    all_cases = sum(s.cases for s in stats)
    if not all_cases:
        return []
    overall_average = sum((s.cost_sum for s in stats), Decimal("0")) / all_cases
    proposals = []
    for s in stats:
        mean = s.cost_sum / s.cases
        variance = max(Decimal("0"), s.cost_sum_squares / s.cases - mean * mean)
        cv = q4(variance.sqrt() / mean) if mean else Decimal("0.0000")
        proposals.append(BasePointProposal(
            drg_code=s.drg_code,
            cases_before_trim=s.cases_before_trim,
            cases=s.cases,
            average_cost=q2(mean),
            base_points=q4(mean / overall_average * 100) if overall_average else Decimal("0.0000"),
            cv=cv,
            cv_exceeded=cv > cv_threshold,
        ))
    return proposals


# Quartiles by linear interpolation between order statistics (the definition of PostgreSQL's
# percentile_cont and numpy's default), written out so that costs stay exact numerics, never float.
_TRIMMED_STATS_SQL = f"""
    WITH k AS ({classified_cases_sql(DRG)}),
    ranked AS (
        SELECT drg_code, total_cost,
               ROW_NUMBER() OVER (PARTITION BY drg_code ORDER BY total_cost) - 1 AS i,
               COUNT(*) OVER (PARTITION BY drg_code) AS n
          FROM k WHERE drg_code <> '' AND NOT incomplete_stay
    ),
    positions AS (
        SELECT DISTINCT drg_code, n, (n - 1) * 0.25 AS h1, (n - 1) * 0.75 AS h3 FROM ranked
    ),
    quartiles AS (
        SELECT p.drg_code, p.n,
               MIN(r.total_cost) FILTER (WHERE r.i = FLOOR(p.h1))
                 + (p.h1 - FLOOR(p.h1)) * (MIN(r.total_cost) FILTER (WHERE r.i = CEIL(p.h1))
                                           - MIN(r.total_cost) FILTER (WHERE r.i = FLOOR(p.h1))) AS q1,
               MIN(r.total_cost) FILTER (WHERE r.i = FLOOR(p.h3))
                 + (p.h3 - FLOOR(p.h3)) * (MIN(r.total_cost) FILTER (WHERE r.i = CEIL(p.h3))
                                           - MIN(r.total_cost) FILTER (WHERE r.i = FLOOR(p.h3))) AS q3
          FROM positions p JOIN ranked r USING (drg_code)
         GROUP BY p.drg_code, p.n, p.h1, p.h3
    ),
    fences AS (
        SELECT drg_code, n, q1 - %(iqr_factor)s * (q3 - q1) AS lower_fence, q3 + %(iqr_factor)s * (q3 - q1) AS upper_fence
          FROM quartiles
    )
    SELECT f.drg_code, f.n AS cases_before_trim, COUNT(*) AS cases, SUM(r.total_cost) AS cost_sum,
           SUM(r.total_cost * r.total_cost) AS cost_sum_squares, f.lower_fence, f.upper_fence
      FROM fences f JOIN ranked r USING (drg_code)
     WHERE r.total_cost BETWEEN f.lower_fence AND f.upper_fence
     GROUP BY f.drg_code, f.n, f.lower_fence, f.upper_fence
     ORDER BY f.drg_code
"""


def base_point_proposals(year: int, params: DrgParams) -> list[BasePointProposal]:
    """测算 of the year's base points from the two years before it (complete DRG stays, trimmed per group
    by IQR). Returns proposals; approving them into DrgGroup rows is the bureau's step."""
    rows = fetch_dicts(_TRIMMED_STATS_SQL, {
        "date_from": datetime.date(year - 2, 1, 1),
        "date_to": datetime.date(year - 1, 12, 31),
        "iqr_factor": Decimal(params.iqr_factor),
    }, year_scale=True)
    return propose_base_points([GroupCostStats(**row) for row in rows], Decimal(params.cv_threshold))


# --- Monthly pre-settlement -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DrgPrepayment:
    unit_code: str
    pool_code: str
    points: Decimal  # points of the institution's cases discharged in the month
    estimated_point_value: Decimal  # fund money per point (patient-borne cost excluded)
    estimate_basis: str
    amount: Decimal


def estimated_fund_point_value(budget: Decimal, estimated_points: Decimal) -> Decimal:
    """Pure: B / the year's estimated points — fund money per point, so that points × it × ratio is
    a payment of fund money without subtracting the patients' share case by case."""
    return q6(budget / estimated_points) if estimated_points > 0 else Decimal("0.000000")


def prepayment_amount(points: Decimal, estimated_pv: Decimal, ratio: Decimal) -> Decimal:
    return q2(points * estimated_pv * ratio)


# --- The plug-in --------------------------------------------------------------------------------


@register
class DrgRule(InpatientRecovery, SchemeRule):
    scheme = Scheme.DRG.value
    params_class = DrgParams
    detail_labels = {
        "pool_code": "统筹池", "pool_budget": "统筹池预算（元）", "pool_points": "统筹池总点数",
        "pool_personal_paid": "统筹池病例个人负担合计（元）", "pool_institutions": "统筹池机构数",
        "point_value": "点值（元/点）", "cases": "病例数", "points": "本机构点数", "personal_paid": "本机构病例个人负担（元）",
        "fund_paid": "本机构病例统筹支付（元）", "ungrouped_cases": "未入组病例数", "readmitted_cases": "再入院减半病例数",
        "approved_cases": "特病单议核定病例数", "incomplete_cases": "不完整住院病例数",
    }
    figure_notes = {
        "quota": "本机构点数 × 点值，四舍五入到分（点值 =（统筹池预算 + 个人负担合计）÷ 统筹池总点数，保留6位小数）",
        "actual": "本机构病例统筹支付合计",
        "entitled": "本机构点数 × 点值 − 本机构病例个人负担，四舍五入到分",
    }

    def approved_points(self, ctx: RunContext) -> dict[int, Decimal]:
        """case id → approved 特病单议 / 新技术 final points of the year's cases (pending and rejected don't count)."""
        from ..case_review_services import approved_points

        return approved_points(ctx.year)

    def approval_blockers(self, ctx):
        from ..case_requests import CaseReview
        from ..case_review_services import pending_blockers

        return pending_blockers(CaseReview, ctx.scheme, ctx.year, ctx.region_code, "特病单议/新技术申请")

    # Pools, the TCM uplift and the readmission rule all act per case, inside the SQL.
    gather_parameters = frozenset({"pool_mode", "tcm_uplift", "readmission_days", "readmission_factor"})
    # B is stored per unit, so the point value is simply recomputed per pool; base points act per case.
    simulation_factors = {"budget": "inputs", "base_points": "gather"}

    def scale_inputs(self, inputs, factors):
        return dataclasses.replace(inputs, budget=inputs.budget * factors.budget)

    def simulation_gather(self, ctx, params, factors):
        return gather_drg(ctx, params, self.approved_points(ctx), factors.base_points)

    def gather(self, ctx, params):
        return gather_drg(ctx, params, self.approved_points(ctx))

    def compute(self, inputs, params, paid):
        return compute_drg(inputs, params, paid)

    def finish(self, ctx, params, outcomes):
        warnings = check_pool_budgets(outcomes)
        settled = {outcome.details["pool_code"] for outcome in outcomes}
        for pool_code in sorted(set(pool_budgets(ctx.year)) - settled):
            if ctx.region_code is None or pool_code.startswith(ctx.region_code):
                warnings.append(f"统筹池{pool_code}有预算额度但本年度没有DRG病例，预算未分配")
        return warnings

    def prepayment(self, ctx: RunContext, params: DrgParams, month: int) -> dict[str, Decimal]:
        """Institution code → the month's pre-settlement amount (the engine's hook; see prepayment_lines)."""
        return {code: line.amount for code, line in self.prepayment_lines(ctx, params, month).items()}

    def prepayment_lines(self, ctx: RunContext, params: DrgParams, month: int) -> dict[str, DrgPrepayment]:
        """Institution code → pre-settlement of the month: its points of the month's discharges × the
        pool's estimated fund point value × prepayment ratio.

        Estimated point value = B of this year / estimated points of the year, where the estimate is
        the pool's points of the previous year (same rules, that year's groups); a pool without
        previous-year points (new pool, first year) uses this year's points to date scaled to 12 months.
        """
        approved = self.approved_points(ctx)
        first = datetime.date(ctx.year, month, 1)
        last = (datetime.date(ctx.year + month // 12, month % 12 + 1, 1)) - datetime.timedelta(days=1)
        month_rows = institution_points(ctx.year, first, last, params, approved, ctx.region_code)
        if not month_rows:
            return {}
        budgets = pool_budgets(ctx.year)
        pools = {row["pool_code"] for row in month_rows}
        missing = sorted(pools - set(budgets))
        if missing:
            raise SchemeInputError(f"{ctx.year}年度以下DRG统筹池没有预算额度，无法预拨：{'、'.join(missing)}")

        previous = RunContext(ctx.scheme, ctx.year - 1)
        estimated = {
            row["pool_code"]: (row["pool_points"], "上年度点数")
            for row in institution_points(previous.year, previous.first_day, previous.last_day, params)
            if row["pool_code"] in pools
        }
        if pools - {code for code, (points, _) in estimated.items() if points > 0}:
            for row in institution_points(ctx.year, ctx.first_day, last, params, approved):
                code = row["pool_code"]
                if code in pools and estimated.get(code, (Decimal("0"), ""))[0] <= 0:
                    estimated[code] = (row["pool_points"] * 12 / month, f"本年1-{month}月点数折算全年")

        result = {}
        for row in month_rows:
            points_estimate, basis = estimated.get(row["pool_code"], (Decimal("0"), "无"))
            pv = estimated_fund_point_value(budgets[row["pool_code"]], points_estimate)
            result[row["unit_code"]] = DrgPrepayment(
                unit_code=row["unit_code"],
                pool_code=row["pool_code"],
                points=row["points"],
                estimated_point_value=pv,
                estimate_basis=basis,
                amount=prepayment_amount(row["points"], pv, Decimal(params.prepayment_ratio)),
            )
        return result
