"""Bed-day payment (SPEC §6.6; SX §2(4)): psychiatric, hospice and rehabilitation stays.

Unit = institution. E = Σ days × quota over its bed-day cases discharged in the year, the quota being
the 床日标准 (fund payment per day) for the year, the institution's level and the case's category.
A = their 统筹支付. The quota is the whole of what the fund owes (there is no budget to share), so the
statement's Q is E itself and S = E − A is entirely the institution's: it keeps what it spent less
than the quota and bears what it spent more (unit part = S, fund part = 0). Paid = the `payments` rows.

A case whose (level, category) has no quota stops the run: paying it nothing, or by item, would
silently change the institution's money.
"""
import dataclasses
from decimal import Decimal

from settlement.models import BedDayCategory, Scheme

from ..base import RunContext, SchemeRule, UnitOutcome, q2, register
from .inpatient_common import BED_DAY, REGIONS_SQL, InpatientRecovery, classified_cases_sql, SchemeInputError, fetch_dicts, region_filter_sql


@dataclasses.dataclass(frozen=True)
class BedDayParams:
    """Length caps for the monitoring report only (a stay longer than the cap is listed, not cut).

    Defaults are this portal's, not from the seeds (SX only asks to watch 平均住院天数 and 日均费用):
    psychiatric 90 days, rehabilitation 60, hospice 30.
    """

    psychiatric_cap_days: int = dataclasses.field(default=90, metadata={"label": "精神类住院天数监测上限", "min": 1})
    rehabilitation_cap_days: int = dataclasses.field(default=60, metadata={"label": "康复类住院天数监测上限", "min": 1})
    hospice_cap_days: int = dataclasses.field(default=30, metadata={"label": "安宁疗护住院天数监测上限", "min": 1})

    def cap_for(self, category: str) -> int:
        return {
            BedDayCategory.PSYCHIATRIC: self.psychiatric_cap_days,
            BedDayCategory.REHABILITATION: self.rehabilitation_cap_days,
            BedDayCategory.HOSPICE: self.hospice_cap_days,
        }[category]


@dataclasses.dataclass(frozen=True)
class BedDayCategoryLine:
    category: str
    cases: int
    days: int
    quota_per_day: Decimal
    amount: Decimal  # days × quota


@dataclasses.dataclass(frozen=True)
class BedDayInputs:
    unit_code: str
    unit_name: str
    level: str
    lines: tuple[BedDayCategoryLine, ...]
    fund_paid: Decimal
    total_cost: Decimal


def _query(ctx: RunContext, params: BedDayParams, **extra):
    return {
        "date_from": ctx.first_day, "date_to": ctx.last_day, "year": ctx.year, "region_code": ctx.region_code,
        "psychiatric": BedDayCategory.PSYCHIATRIC.value, "psychiatric_cap": params.psychiatric_cap_days,
        "rehabilitation": BedDayCategory.REHABILITATION.value, "rehabilitation_cap": params.rehabilitation_cap_days,
        "hospice": BedDayCategory.HOSPICE.value, "hospice_cap": params.hospice_cap_days,
    } | extra


_CAP_SQL = """CASE k.bed_day_category WHEN %(psychiatric)s THEN %(psychiatric_cap)s
                                      WHEN %(rehabilitation)s THEN %(rehabilitation_cap)s
                                      WHEN %(hospice)s THEN %(hospice_cap)s END"""

# One row per institution and category with its quota (NULL when missing) and the monitoring
# figures; one statement serves both the settlement and the report.
_BED_DAY_SQL = f"""
    WITH k AS ({classified_cases_sql(BED_DAY)})
    SELECT i.code AS unit_code, i.name AS unit_name, i.level, k.bed_day_category AS category,
           q.amount AS quota_per_day, COUNT(*) AS cases, SUM(k.los) AS days,
           SUM(k.total_cost) AS total_cost, SUM(k.fund_paid) AS fund_paid,
           {_CAP_SQL} AS cap_days,
           COUNT(*) FILTER (WHERE k.los > {_CAP_SQL}) AS over_cap_cases
      FROM k
      JOIN alliances_institution i ON i.id = k.institution_id
      JOIN ({REGIONS_SQL}) r ON r.id = i.county_id
      LEFT JOIN settlement_beddayquota q ON q.year = %(year)s AND q.level = i.level AND q.category = k.bed_day_category
     WHERE {region_filter_sql('r.code', 'r.parent_code')}
     GROUP BY i.code, i.name, i.level, k.bed_day_category, q.amount
     ORDER BY i.code, k.bed_day_category
"""


def gather_bed_day(ctx: RunContext, params: BedDayParams) -> dict[str, BedDayInputs]:
    rows = fetch_dicts(_BED_DAY_SQL, _query(ctx, params))
    missing = sorted({(row["level"], row["category"]) for row in rows if row["quota_per_day"] is None})
    if missing:
        listed = "、".join(f"{level}·{category}" for level, category in missing)
        raise SchemeInputError(f"{ctx.year}年度缺少以下机构等级和床日类别的床日付费标准：{listed}")
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["unit_code"], []).append(row)
    return {
        code: BedDayInputs(
            unit_code=code,
            unit_name=rows_[0]["unit_name"],
            level=rows_[0]["level"],
            lines=tuple(
                BedDayCategoryLine(
                    category=row["category"], cases=row["cases"], days=row["days"],
                    quota_per_day=row["quota_per_day"], amount=row["days"] * row["quota_per_day"],
                )
                for row in rows_
            ),
            fund_paid=sum((row["fund_paid"] for row in rows_), Decimal("0")),
            total_cost=sum((row["total_cost"] for row in rows_), Decimal("0")),
        )
        for code, rows_ in grouped.items()
    }


def compute_bed_day(inputs: BedDayInputs, params: BedDayParams, paid: Decimal) -> UnitOutcome:
    entitled = q2(sum((line.days * line.quota_per_day for line in inputs.lines), Decimal("0")))
    actual = q2(inputs.fund_paid)
    surplus = entitled - actual
    return UnitOutcome.settle(
        unit_code=inputs.unit_code,
        unit_name=inputs.unit_name,
        quota=entitled,  # the quota is the entitlement: days × 床日标准
        actual=actual,
        unit_part=surplus,  # nothing is shared with the fund (see module docstring)
        entitled=entitled,
        paid=paid,
        details={
            "level": inputs.level,
            "cases": sum(line.cases for line in inputs.lines),
            "days": sum(line.days for line in inputs.lines),
            "total_cost": inputs.total_cost,
            "by_category": {
                line.category: {
                    "cases": line.cases, "days": line.days, "quota_per_day": line.quota_per_day, "amount": line.amount,
                }
                for line in inputs.lines
            },
        },
    )


@dataclasses.dataclass(frozen=True)
class BedDayMonitoringRow:
    unit_code: str
    unit_name: str
    category: str
    cases: int
    days: int
    average_length_of_stay: Decimal  # days / cases, 2 places
    average_daily_cost: Decimal  # Σ 总费用 / Σ days
    average_daily_fund_paid: Decimal  # Σ 统筹支付 / Σ days, comparable with the quota
    quota_per_day: Decimal | None
    daily_cost_over_quota: Decimal | None  # average daily cost − quota
    cap_days: int
    over_cap_cases: int  # stays longer than cap_days


def bed_day_monitoring(ctx: RunContext, params: BedDayParams) -> list[BedDayMonitoringRow]:
    """SPEC §6.6 report: average stay, daily cost against the quota and stays over the length cap,
    per institution and category. Rows without a quota are reported too (quota empty)."""
    result = []
    for row in fetch_dicts(_BED_DAY_SQL, _query(ctx, params)):
        daily_cost = q2(row["total_cost"] / row["days"])
        quota = row["quota_per_day"]
        result.append(BedDayMonitoringRow(
            unit_code=row["unit_code"],
            unit_name=row["unit_name"],
            category=row["category"],
            cases=row["cases"],
            days=row["days"],
            average_length_of_stay=q2(Decimal(row["days"]) / row["cases"]),
            average_daily_cost=daily_cost,
            average_daily_fund_paid=q2(row["fund_paid"] / row["days"]),
            quota_per_day=quota,
            daily_cost_over_quota=None if quota is None else daily_cost - quota,
            cap_days=row["cap_days"],
            over_cap_cases=row["over_cap_cases"],
        ))
    return result


@register
class BedDayRule(InpatientRecovery, SchemeRule):
    scheme = Scheme.BED_DAY.value
    params_class = BedDayParams
    detail_labels = {
        "level": "机构等级", "cases": "病例数", "days": "床日数", "total_cost": "病例总费用（元）",
        "by_category": "按床日类别",
    }
    detail_totals = {"by_category": ("amount", "@entitled", "")}
    figure_notes = {"quota": "床日付费的定额即应得金额：Σ 床日数 × 床日标准", "actual": "本机构床日病例统筹支付合计"}

    # The length caps only feed the monitoring report, never the inputs of a unit.
    gather_parameters = frozenset()
    simulation_factors = {"standards": "inputs"}

    def scale_inputs(self, inputs, factors):
        f = factors.standards
        lines = tuple(
            dataclasses.replace(line, quota_per_day=line.quota_per_day * f, amount=line.days * line.quota_per_day * f)
            for line in inputs.lines
        )
        return dataclasses.replace(inputs, lines=lines)

    def gather(self, ctx, params):
        return gather_bed_day(ctx, params)

    def compute(self, inputs, params, paid):
        return compute_bed_day(inputs, params, paid)
