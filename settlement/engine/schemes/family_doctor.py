"""Family-doctor service fee per signed and served person, adjusted by the assessment.

SPEC §6.3, from [PZH §4(四)2, §4(五)1, §4(六)1].

Read top to bottom: the policy parameters; the pure formulas; the scheme rule, whose `gather` counts
persons and adds up their package fees per institution in two GROUP BY queries; the mid-year advance.
"""
import dataclasses
import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import DecimalField, Exists, Max, OuterRef, Q, Value
from django.db.models.functions import Coalesce

from alliances.models import Institution
from contracts.models import Contract, ServicePackage
from settlement.models import Assessment, FamilyDoctorService, Scheme

from ..base import ZERO, RunContext, SchemeRule, UnitOutcome, q2, register

HUNDRED = Decimal("100")


def _param(default, label, **meta):
    return dataclasses.field(default=default, metadata={"label": label, **meta})


@dataclasses.dataclass(frozen=True)
class FamilyDoctorParams:
    # "年中时…将家庭医生签约服务费的50%预付给签约医疗机构".
    advance_ratio: Decimal = _param(Decimal("0.50"), "年中预付比例", min=Decimal("0"), max=Decimal("1"))
    # Signed persons are those whose verified contract is in force on this day (default 30 June).
    advance_month: int = _param(6, "签约人数统计月", min=1, max=12)
    advance_day: int = _param(30, "签约人数统计日", min=1, max=31)
    # July by default: the first month in which the 30 June headcount is complete.
    advance_payment_month: int = _param(7, "年中预付拨付月份", min=1, max=12)
    # Used when the institution has no assessment row.
    default_score: Decimal = _param(Decimal("100"), "无考核结果时的默认得分", min=Decimal("0"), max=Decimal("100"))

    def __post_init__(self):
        try:
            datetime.date(2001, self.advance_month, self.advance_day)  # a non-leap year: no 29 February
        except ValueError:
            raise ValueError(f"签约人数统计日 {self.advance_month}月{self.advance_day}日 不是有效日期") from None
        if not 1 <= self.advance_payment_month <= 12:
            raise ValueError(f"预付月份应为1至12，实际为{self.advance_payment_month}")

    def census_day(self, year: int) -> datetime.date:
        return datetime.date(year, self.advance_month, self.advance_day)


# --- Pure formulas ---------------------------------------------------------------------------


def entitled(actual: Decimal, score: Decimal) -> Decimal:
    """E = A × score / 100, rounded to 分 once ("结合年度考核结果")."""
    return q2(actual * score / HUNDRED)


def mid_year_advance(signed_fees: Decimal, params: FamilyDoctorParams) -> Decimal:
    """50% × Σ fee over the persons signed on the census day, rounded to 分."""
    return q2(params.advance_ratio * signed_fees)


# --- Gather ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FamilyDoctorInputs:
    unit_code: str
    unit_name: str
    signed_persons: int  # verified contract in force on the census day
    signed_fees: Decimal  # Σ package fee over them: Q before rounding
    served_persons: int  # verified contract in force some day of the year + a service record there
    served_fees: Decimal  # Σ package fee over them: A before rounding
    score: Decimal
    score_assessed: bool  # False when `score` is the default for a missing assessment
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Count:
    persons: int = 0
    fees: Decimal = ZERO
    without_fee: int = 0


def _default_fee():
    package = ServicePackage.default()
    return package.fee if package else None


def _verified_contracts(ctx: RunContext):
    contracts = Contract.objects.filter(verified_on__isnull=False)
    if ctx.region_code:
        # A run naming the city itself covers all of it.
        contracts = contracts.filter(
            Q(institution__county__code=ctx.region_code) | Q(institution__county__parent__code=ctx.region_code)
        )
    return contracts


def _count_persons(contracts, default_fee) -> dict[int, _Count]:
    """Per institution: persons, Σ their fee, persons without a fee, over `contracts`.

    A person counts once per institution even when two of their contracts there fall in the period, at the
    higher of the two fees. The inner GROUP BY (institution, person) is the ORM's; the outer one, over its
    result, is plain SQL because the ORM cannot aggregate an aggregate.
    """
    fee = Coalesce("package__fee", Value(default_fee, output_field=DecimalField(max_digits=10, decimal_places=2)))
    per_person = contracts.values("institution_id", "person_id").annotate(fee=Max(fee)).order_by()
    sql, sql_params = per_person.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT institution_id, COUNT(*), COALESCE(SUM(fee), 0), COUNT(*) - COUNT(fee) "
            f"FROM ({sql}) AS per_person GROUP BY institution_id",
            sql_params,
        )
        return {row[0]: _Count(row[1], row[2], row[3]) for row in cursor.fetchall()}


def _in_force_on(day):
    return Q(start__lte=day) & (Q(end__isnull=True) | Q(end__gte=day))


def gather_signed(ctx: RunContext, params: FamilyDoctorParams, default_fee) -> dict[int, _Count]:
    return _count_persons(_verified_contracts(ctx).filter(_in_force_on(params.census_day(ctx.year))), default_fee)


def gather_inputs(ctx: RunContext, params: FamilyDoctorParams) -> dict[str, FamilyDoctorInputs]:
    default_fee = _default_fee()
    signed = gather_signed(ctx, params, default_fee)
    served_record = FamilyDoctorService.objects.filter(
        person=OuterRef("person"), institution=OuterRef("institution"),
        service_date__range=(ctx.first_day, ctx.last_day),
    )
    in_year = _verified_contracts(ctx).filter(
        Q(start__lte=ctx.last_day) & (Q(end__isnull=True) | Q(end__gte=ctx.first_day))
    )
    # The service test depends on (person, institution) alone, as the grouping does, so it is a WHERE
    # (a hashed semi-join over the year's services) rather than a per-contract subplan in the SELECT.
    served = _count_persons(in_year.filter(Exists(served_record)), default_fee)
    # Every institution with a verified contract in the year is a unit, so a statement exists even at 0.
    in_year_ids = set(in_year.values_list("institution_id", flat=True).distinct().order_by())

    institutions = Institution.objects.filter(pk__in=in_year_ids | set(signed)).values_list("pk", "code", "name")
    codes = {pk: (code, name) for pk, code, name in institutions}
    scores = dict(
        Assessment.objects.filter(year=ctx.year, unit_code__in=[code for code, _ in codes.values()])
        .values_list("unit_code", "score")
    )
    inputs = {}
    for pk, (code, name) in sorted(codes.items(), key=lambda item: item[1][0]):
        s, v = signed.get(pk, _Count()), served.get(pk, _Count())
        warnings = []
        if s.without_fee or v.without_fee:
            warnings.append(
                f"没有默认服务包，{max(s.without_fee, v.without_fee)}名未指定服务包的签约人员未计签约服务费"
            )
        inputs[code] = FamilyDoctorInputs(
            unit_code=code,
            unit_name=name,
            signed_persons=s.persons,
            signed_fees=s.fees,
            served_persons=v.persons,
            served_fees=v.fees,
            score=scores.get(code, params.default_score),
            score_assessed=code in scores,
            warnings=tuple(warnings),
        )
    return inputs


# --- The rule --------------------------------------------------------------------------------


@register
class FamilyDoctorRule(SchemeRule):
    """Unit = the contract's institution.

    Q = Σ fee over persons signed on 30 June, A = Σ fee over served persons, E = A × score / 100.
    S = Q − A is reported, but E does not depend on Q: what the institution keeps or loses against A is
    the assessment's deduction, so unit part = E − A and the fund's part is the rest of S.
    """

    scheme = Scheme.FAMILY_DOCTOR.value
    params_class = FamilyDoctorParams
    figure_notes = {
        "quota": "Σ 服务包费用 × 6月30日在约签约人数", "actual": "Σ 服务包费用 × 服务人数",
        "entitled": "实际支出（A）× 考核得分 ÷ 100，四舍五入到分",
    }

    # The census day picks the signed persons; the default score is filled in for missing assessments.
    gather_parameters = frozenset({"advance_month", "advance_day", "default_score"})
    # The service-package fee is this scheme's standard (元/人·年).
    simulation_factors = {"standards": "inputs"}

    def scale_inputs(self, inputs, factors):
        f = factors.standards
        return dataclasses.replace(inputs, signed_fees=inputs.signed_fees * f, served_fees=inputs.served_fees * f)

    def gather(self, ctx: RunContext, params) -> dict[str, FamilyDoctorInputs]:
        return gather_inputs(ctx, params)

    def compute(self, inputs: FamilyDoctorInputs, params, paid: Decimal) -> UnitOutcome:
        quota = q2(inputs.signed_fees)
        actual = q2(inputs.served_fees)
        entitled_amount = entitled(actual, inputs.score)
        unit_part = entitled_amount - actual
        return UnitOutcome.settle(
            unit_code=inputs.unit_code,
            unit_name=inputs.unit_name,
            quota=quota,
            actual=actual,
            unit_part=unit_part,
            entitled=entitled_amount,
            paid=paid,
            details={
                "签约人数（6月30日在约）": inputs.signed_persons,
                "服务人数": inputs.served_persons,
                "考核得分": str(inputs.score),
                "考核得分来源": "考核结果" if inputs.score_assessed else "无考核结果，按默认分",
                "年中预付额": str(mid_year_advance(inputs.signed_fees, params)),
            },
            warnings=inputs.warnings,
        )

    def prepayment(self, ctx: RunContext, params, month: int) -> dict[str, Decimal]:
        """The mid-year advance, paid in `advance_payment_month` (July by default); no payment in other months.

        July rather than June: the headcount is taken on 30 June, so it is complete only once June is over.
        """
        if not 1 <= month <= 12:
            raise ValueError(f"月份应为1至12，实际为{month}")
        if month != params.advance_payment_month:
            return {}
        signed = gather_signed(ctx, params, _default_fee())
        codes = dict(Institution.objects.filter(pk__in=list(signed)).values_list("pk", "code"))
        return {
            codes[pk]: amount
            for pk, count in signed.items()
            if (amount := mid_year_advance(count.fees, params)) != ZERO
        }
