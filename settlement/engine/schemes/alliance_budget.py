"""Alliance "one total" global budget (SPEC §6.4, KF §4–§6).

unit = alliance; B = its alliance_budget Budget rows of the year (职工 + 居民);
A = 统筹支付 of 普通门诊 claims of the resident-insurance persons the alliance covers (contracts/coverage.py:
by verified contract, else the county's default alliance), wherever treated, so that no claim counts
for two alliances and Σ A over a county's alliances = the county's A; deposit = deposit_ratio × B, returned in proportion f = min(1, score / full_return_score);
E = B − deposit × (1 − f) (with retention 100% and overspend covered 0%: 结余留用，超支不补);
unit part = E − A; year-end = E − 已拨付 (monthly prepayments of prepayment_ratio × B / 12).
"""
import dataclasses
import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Q, Sum

from alliances.models import Alliance
from contracts.coverage import COVERAGE_SQL, coverage_params, covered_persons
from contracts.models import InsuranceType
from settlement.models import VisitType

from .. import sql as S
from ..base import RunContext, SchemeRule, UnitOutcome, q2, register

ONE = Decimal("1")
ZERO = Decimal("0.00")


class MissingAssessmentError(ValueError):
    """An alliance has no assessment score for the year: the deposit cannot be settled."""


class MissingDefaultAllianceError(ValueError):
    """A county has several alliances and none is its default: uncontracted residents belong nowhere."""


def actual_by_alliance(year, alliance_ids, by_month=False):
    """alliance id (→ month) → A: Σ 统筹支付 of the covered residents' 普通门诊 claims of the year,
    wherever treated; each claim counts for exactly one alliance (SPEC §6.4)."""
    month = "EXTRACT(MONTH FROM c.visit_date)::int" if by_month else "0"
    first, last = coverage_params(year)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT cov.alliance_id, {month} AS month, SUM(c.fund_paid)
                  FROM settlement_outpatientclaim c
                  JOIN ({COVERAGE_SQL}) cov ON cov.person_id = c.person_id
                 WHERE c.visit_date BETWEEN %s AND %s AND c.visit_type = %s
                   AND cov.insurance_type = %s AND cov.alliance_id = ANY(%s::bigint[])
                 GROUP BY 1, 2""",
            [first, last, first, last, VisitType.GENERAL, InsuranceType.RESIDENT, list(alliance_ids)],
        )
        rows = cursor.fetchall()
    if by_month:
        return {(pk, m): total for pk, m, total in rows}
    return {pk: total for pk, _, total in rows}


def actual_and_coverage(year, alliance_ids):
    """(alliance id → A, alliance id → (persons covered by contract, by default)) of the residents, as
    `actual_by_alliance` and `coverage_counts` give them, with the coverage worked out once.

    Each of those two statements works the coverage out afresh (sorting the year's contracts for every
    person's first one, in each parallel worker): on the city data that was the larger part of both.
    Here it is kept in a scratch table that the claims join and the counts both read.
    """
    first, last = coverage_params(year)
    resident_coverage = f"""
        SELECT cov.person_id, cov.alliance_id, cov.by_contract FROM ({COVERAGE_SQL}) cov
         WHERE cov.insurance_type = %s AND cov.alliance_id = ANY(%s::bigint[])"""
    with transaction.atomic(), connection.cursor() as cursor:
        S.roomy(cursor)
        with S.scratch_table("alliance_coverage", resident_coverage,
                             [first, last, InsuranceType.RESIDENT, list(alliance_ids)]) as coverage:
            cursor.execute(
                f"""SELECT cov.alliance_id, SUM(c.fund_paid)
                      FROM settlement_outpatientclaim c JOIN {coverage} cov ON cov.person_id = c.person_id
                     WHERE c.visit_date BETWEEN %s AND %s AND c.visit_type = %s
                     GROUP BY 1""",
                [first, last, VisitType.GENERAL],
            )
            actual = dict(cursor.fetchall())
            cursor.execute(
                f"""SELECT alliance_id, COUNT(*) FILTER (WHERE by_contract), COUNT(*) FILTER (WHERE NOT by_contract)
                      FROM {coverage} GROUP BY 1"""
            )
            found = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    return actual, {pk: found.get(pk, (0, 0)) for pk in alliance_ids}


def counties_without_default(county_ids):
    """Counties among `county_ids` with several alliances and none flagged default: (name, code)."""
    from django.db.models import Count

    return list(
        Alliance.objects.filter(county_id__in=county_ids).values("county__name", "county__code").order_by("county__code")
        .annotate(n=Count("id"), defaults=Count("id", filter=Q(is_default=True)))
        .filter(n__gt=1, defaults=0).values_list("county__name", "county__code")
    )


def _param(default, label, low=None, high=None):
    meta = {"label": label}
    if low is not None:
        meta["min"] = Decimal(low)
    if high is not None:
        meta["max"] = Decimal(high)
    return dataclasses.field(default=Decimal(default), metadata=meta)


@dataclasses.dataclass(frozen=True)
class AllianceBudgetParams:
    # KF §5(一): "预留5%医疗服务质量保证金后，打包拨付".
    deposit_ratio: Decimal = _param("0.05", "质量保证金比例", 0, 1)
    # SPEC §6.4 default: returned linearly with the score, in full at ≥ 90.
    full_return_score: Decimal = _param("90", "保证金全额返还考核分", "0.01", 100)
    prepayment_ratio: Decimal = _param("0.95", "月度预拨比例", 0, 1)
    surplus_retention: Decimal = _param("1.00", "结余留用比例", 0, 1)  # 结余留用
    overspend_covered: Decimal = _param("0.00", "超支基金分担比例", 0, 1)  # 超支不补


@dataclasses.dataclass(frozen=True)
class AllianceBudgetInputs:
    unit_code: str
    unit_name: str
    county_code: str
    budget_by_type: dict  # insurance type → Decimal
    actual: Decimal  # A, already rounded to 分
    score: Decimal | None
    budget_status: str = ""
    warnings: tuple = ()
    covered_by_contract: int = 0  # residents attributed by their verified contract (SPEC §6.4)
    covered_by_default: int = 0  # residents without one, attributed to the county's default alliance

    @property
    def budget(self):
        return q2(sum(self.budget_by_type.values(), ZERO))


@dataclasses.dataclass(frozen=True)
class DepositFigures:
    deposit: Decimal
    returned_fraction: Decimal
    withheld: Decimal
    budget_after_deposit: Decimal
    entitled: Decimal


def settle(budget, actual, score, params: AllianceBudgetParams) -> DepositFigures:
    """Pure: E from B, A and the assessment score.

    Worked example (SPEC §6.4): B = 12,000,000.00 → deposit 600,000.00; score 60 → f = 2/3,
    withheld = 600,000.00 × 1/3 = 200,000.00, E = 11,800,000.00; score ≥ 90 → E = B.
    """
    if score is None:
        raise MissingAssessmentError("缺少考核得分，无法返还质量保证金")
    deposit = q2(budget * params.deposit_ratio)
    fraction = min(ONE, max(Decimal("0"), Decimal(score) / params.full_return_score))
    withheld = q2(deposit * (ONE - fraction))
    net = budget - withheld
    if actual <= net:
        entitled = actual + q2(params.surplus_retention * (net - actual))
    else:
        entitled = net + q2(params.overspend_covered * (actual - net))
    return DepositFigures(deposit, fraction, withheld, net, entitled)


@register
class AllianceBudgetRule(SchemeRule):
    scheme = "alliance_budget"
    params_class = AllianceBudgetParams
    figure_parts = {"quota": (("职工预算", "居民预算"), "")}
    figure_notes = {"entitled": "扣除后预算 = 预算 − 扣留保证金；实际支出不超过扣除后预算时按结余留用比例加上结余，超过时按超支补助比例加上超支，四舍五入到分"}

    gather_parameters = frozenset()
    simulation_factors = {"budget": "inputs"}

    def scale_inputs(self, inputs, factors):
        f = factors.budget
        return dataclasses.replace(inputs, budget_by_type={k: v * f for k, v in inputs.budget_by_type.items()})

    def _budgets(self, ctx: RunContext):
        from settlement.models import Budget, Scheme

        return Budget.objects.filter(year=ctx.year, scheme=Scheme.ALLIANCE_BUDGET)

    def _alliances(self, ctx: RunContext, codes):
        alliances = Alliance.objects.filter(code__in=codes).select_related("county")
        if ctx.region_code:
            # A run naming the city itself covers all of it.
            alliances = alliances.filter(Q(county__code=ctx.region_code) | Q(county__parent__code=ctx.region_code))
        return alliances.order_by("code")

    def gather(self, ctx: RunContext, params):
        from settlement.models import Assessment

        budget_rows = list(self._budgets(ctx).values("unit_code", "insurance_type").annotate(total=Sum("amount")))
        by_alliance = {}
        for row in budget_rows:
            kind = row["insurance_type"] or "合计"
            by_alliance.setdefault(row["unit_code"], {})[kind] = row["total"]
        alliances = list(self._alliances(ctx, by_alliance))
        unsettled = counties_without_default({a.county_id for a in alliances})
        if unsettled:
            raise MissingDefaultAllianceError(
                "以下县区有多个医共体但未指定县区默认医共体，无法确定未签约居民归属哪个医共体："
                f"{'、'.join(f'{name}（{code}）' for name, code in unsettled)}。请在医共体中勾选“县区默认医共体”。"
            )
        actual, covered = actual_and_coverage(ctx.year, [a.pk for a in alliances])
        scores = dict(
            Assessment.objects.filter(year=ctx.year, unit_code__in=[a.code for a in alliances])
            .values_list("unit_code", "score")
        )
        missing = [f"{a.name}（{a.code}）" for a in alliances if a.code not in scores]
        if missing:
            # The deposit return depends on the score; settling without one would invent money.
            raise MissingAssessmentError(
                f"{ctx.year}年度以下医共体缺少考核得分，无法进行总额付费清算：{'、'.join(missing)}。"
                "请先录入或计算考核结果。"
            )
        inputs = {}
        for a in alliances:
            warnings = []
            if a.budget_status not in ("已批准", "已退出"):
                warnings.append(f"{a.name}总额付费状态为“{a.get_budget_status_display()}”，尚未获批")
            inputs[a.code] = AllianceBudgetInputs(
                unit_code=a.code, unit_name=a.name, county_code=a.county.code, budget_by_type=by_alliance[a.code],
                actual=q2(actual.get(a.pk) or ZERO), score=scores[a.code],
                covered_by_contract=covered[a.pk][0], covered_by_default=covered[a.pk][1],
                budget_status=a.budget_status, warnings=tuple(warnings),
            )
        return inputs

    def compute(self, inputs: AllianceBudgetInputs, params, paid) -> UnitOutcome:
        budget, actual = inputs.budget, inputs.actual
        figures = settle(budget, actual, inputs.score, params)
        unit_part = figures.entitled - actual
        return UnitOutcome.settle(
            unit_code=inputs.unit_code,
            unit_name=inputs.unit_name,
            quota=budget,
            actual=actual,
            unit_part=unit_part,
            entitled=figures.entitled,
            paid=paid,
            details={
                "参保县区": inputs.county_code,
                "覆盖参保居民（签约）": str(inputs.covered_by_contract),
                "覆盖参保居民（默认归属）": str(inputs.covered_by_default),
                **{f"{kind}预算": str(amount) for kind, amount in sorted(inputs.budget_by_type.items())},
                "质量保证金": str(figures.deposit),
                "考核得分": str(inputs.score),
                "保证金返还比例": str(figures.returned_fraction),
                "扣留保证金": str(figures.withheld),
                "扣除后预算": str(figures.budget_after_deposit),
            },
            warnings=inputs.warnings,
        )

    def claims_for_unit(self, ctx: RunContext, params, unit_code):
        """The claims behind A: 普通门诊 of the residents the alliance covers, wherever treated."""
        from settlement.models import OutpatientClaim

        alliance_id = Alliance.objects.filter(code=unit_code).values_list("pk", flat=True).first()
        if alliance_id is None:
            return None
        return OutpatientClaim.objects.filter(
            visit_date__range=(ctx.first_day, ctx.last_day), visit_type=VisitType.GENERAL,
            person_id__in=covered_persons(ctx.year, alliance_id, InsuranceType.RESIDENT),
        )

    def prepayment(self, ctx: RunContext, params, month):
        """{alliance code: B / 12 × prepayment_ratio} for alliances under global budget that month.

        Global-budget payment applies from the month after approval (SPEC §6.4), and stops once the
        alliance has withdrawn.
        """
        from alliances.models import BudgetStatus

        month_start = datetime.date(ctx.year, month, 1)
        totals = dict(
            self._budgets(ctx).values_list("unit_code").order_by().annotate(total=Sum("amount"))
        )
        eligible = self._alliances(ctx, totals).filter(
            Q(budget_status=BudgetStatus.APPROVED) & Q(budget_effective_from__lte=month_start)
        )
        return {
            code: q2(totals[code] * params.prepayment_ratio / 12)
            for code in eligible.values_list("code", flat=True)
        }
