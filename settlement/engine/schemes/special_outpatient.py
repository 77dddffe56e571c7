"""二类门特 per disease per head, with risk adjustment and tiered overspend sharing (SPEC §6.2, [PZH §4]).

Read top to bottom: the policy parameters; the pure formulas (weights, calibration, quota, sharing,
prepayment, the 测算 of standards); the scheme rule whose `gather` turns designations and claims into
one `SpecialOutpatientInputs` per treating institution with a few GROUP BY queries; and the thin service
that writes proposed standards as drafts for staff to approve.
"""
import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Q, Sum
from django.db.models.expressions import RawSQL

from alliances.models import Institution, Region
from contracts.models import Disease, DiseaseCategory, DiseaseRegistration
from settlement.models import (
    ApprovalStatus, Budget, OutpatientClaim, Scheme, SpecialDesignation, SpecialStandard, VisitType,
)

from .. import sql as S
from ..base import ZERO, RunContext, SchemeRule, UnitOutcome, q2, register

TIERED = "tiered"
CLIFF = "cliff"
ONE = Decimal("1")
MONTHS = Decimal("12")
HALF_FEN = Decimal("0.005")
STANDARD_SUM_KEY = "实际人头标准合计"


def _param(default, label, **meta):
    return dataclasses.field(default=default, metadata={"label": label, **meta})


_RATIO = {"min": Decimal("0"), "max": Decimal("1")}


@dataclasses.dataclass(frozen=True)
class SpecialOutpatientParams:
    # Share of a surplus the institution keeps.
    surplus_retention: Decimal = _param(Decimal("0.80"), "结余留用比例", **_RATIO)
    # Reading of "超出总额10%以内…10%及以上" (see `share`).
    overspend_mode: str = _param(TIERED, "超支分担方式", choices=(TIERED, CLIFF),
                                 choice_labels={TIERED: "分段分担（区间内基金按比例分担，超出部分机构承担）",
                                                CLIFF: "整体判断（超支在区间内基金按比例分担，超出区间全部由机构承担）"})
    # The shared band of overspend, as a fraction of Q.
    overspend_tier: Decimal = _param(Decimal("0.10"), "基金分担超支区间（占定额比例）", **_RATIO)
    # The fund's share of the overspend inside the band.
    fund_share_in_tier: Decimal = _param(Decimal("0.40"), "区间内基金分担比例", **_RATIO)
    # Monthly prepayment = Q_plan / 12 × ratio.
    prepayment_ratio: Decimal = _param(Decimal("0.95"), "月度预付比例", **_RATIO)
    risk_age: int = _param(65, "风险调整年龄（1月1日周岁）", min=0, max=150)
    risk_a: Decimal = _param(Decimal("0.2"), "高龄风险系数a", min=Decimal("0"))
    risk_b: Decimal = _param(Decimal("0.3"), "一类门特风险系数b", min=Decimal("0"))

    def __post_init__(self):
        if self.overspend_mode not in (TIERED, CLIFF):
            raise ValueError(f"超支分担方式应为 {TIERED} 或 {CLIFF}，实际为“{self.overspend_mode}”")


# --- Pure formulas ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HeadClass:
    """Heads of one disease sharing one risk class: the unit of the weighting arithmetic."""

    disease_code: str
    aged: bool
    class1: bool
    heads: int


def risk_weight(aged: bool, class1: bool, params: SpecialOutpatientParams) -> Decimal:
    """w = 1 + a·[age ≥ risk age on 1 January] + b·[一类门特 registration in force in the year]."""
    return ONE + (params.risk_a if aged else ZERO) + (params.risk_b if class1 else ZERO)


def standard_sums(classes: Iterable[HeadClass], standards: Mapping[str, Decimal], params) -> tuple[Decimal, Decimal]:
    """(Σ S_d, Σ S_d·w) over the heads; a disease without a standard contributes nothing to either."""
    plain = weighted = ZERO
    for cls in classes:
        standard = standards.get(cls.disease_code)
        if standard is None:
            continue
        plain += standard * cls.heads
        weighted += standard * risk_weight(cls.aged, cls.class1, params) * cls.heads
    return plain, weighted


def calibration_factor(standard_sum: Decimal, weighted_sum: Decimal) -> Decimal:
    """k = Σ S_d / Σ S_d·w, so that weighting moves money between institutions without changing the total.

    Not rounded: a k rounded to 6 places would move a city total of hundreds of millions by more than the
    1 分 per institution the calibration identity allows. With no weighted heads any k is neutral; 1 keeps
    the plan readable.
    """
    if weighted_sum == ZERO:
        return ONE
    return standard_sum / weighted_sum


def institution_quota(calibration: Decimal, weighted_sum: Decimal) -> Decimal:
    """Q = k · Σ S_d·w over the institution's heads, rounded to 分 once (SPEC §3)."""
    return q2(calibration * weighted_sum)


@dataclasses.dataclass(frozen=True)
class Sharing:
    unit_part: Decimal  # SPEC §5 sign: + kept surplus, − borne overspend
    fund_part: Decimal  # S − unit_part: + surplus the fund keeps, − overspend the fund bears
    entitled: Decimal


def share(quota: Decimal, actual: Decimal, params: SpecialOutpatientParams) -> Sharing:
    """Split S = Q − A between institution and fund ([PZH §4(六)2–3]).

    Surplus: the institution keeps `surplus_retention` of S.
    Overspend O, tiered (default): the fund bears `fund_share_in_tier` of min(O, tier·Q); the part beyond
    tier·Q is the institution's alone.
    Overspend O, cliff: "超出总额10%以内的部分…超出总额10%及以上的，由定点医疗机构全部承担" read as a switch
    on the whole overspend: O ≤ tier·Q → the fund bears its share of all of O; O > tier·Q → the institution
    bears all of O. At exactly tier·Q the fund still shares, because 以内 includes the figure itself
    (民法典第1259条: "以上、以下、以内、届满，包括本数").
    In both cases E = A + unit part, which is A + 0.8·S for a surplus and Q + fund's share for an overspend.
    The unit's part is rounded once; the fund's is the remainder, so the parts add up to S exactly.
    """
    surplus = quota - actual
    if surplus >= ZERO:
        unit_part = q2(params.surplus_retention * surplus)
    else:
        overspend = -surplus
        band = params.overspend_tier * quota
        if params.overspend_mode == TIERED:
            fund_borne = params.fund_share_in_tier * min(overspend, band)
        else:
            fund_borne = params.fund_share_in_tier * overspend if overspend <= band else ZERO
        unit_part = ZERO - q2(overspend - fund_borne)  # not -q2(…): a zero part must not print as -0.00
    return Sharing(unit_part=unit_part, fund_part=surplus - unit_part, entitled=actual + unit_part)


def check_calibration(outcomes: Iterable[UnitOutcome]) -> list[str]:
    """Σ Q against Σ S_d (each unit's details["实际人头标准合计"]); a gap beyond rounding is a bug to report."""
    outcomes = list(outcomes)
    quotas = sum((o.quota for o in outcomes), ZERO)
    standards = sum((Decimal(str(o.details.get(STANDARD_SUM_KEY, "0"))) for o in outcomes), ZERO)
    if abs(quotas - standards) <= HALF_FEN * len(outcomes):
        return []
    return [f"风险调整校正后各机构定额合计{quotas}元，与实际人头标准合计{standards}元不一致，请核查"]


def monthly_prepayment(plan_quota: Decimal, params: SpecialOutpatientParams) -> Decimal:
    """Q_plan / 12 × 95% ("年度总额按月均等划分…按95%的比例向医疗机构预付"), rounded to 分 per month."""
    return q2(plan_quota / MONTHS * params.prepayment_ratio)


@dataclasses.dataclass(frozen=True)
class StandardProposal:
    standards: dict[str, Decimal]  # disease code → proposed S_d (元/人·年)
    per_head_history: dict[str, Decimal]  # h_d
    planned_heads: dict[str, int]  # N_d
    budget: Decimal  # B
    weighted_history: Decimal  # Σ_d h_d·N_d
    missing_history: tuple[str, ...]  # planned diseases without any historical head: no proposal


def propose_standards(
    history_paid: Mapping[str, Decimal], history_heads: Mapping[str, int], planned_heads: Mapping[str, int],
    budget: Decimal,
) -> StandardProposal:
    """测算: S_d = h_d × B / Σ_d h_d·N_d, with h_d = historical 统筹支付 / historical heads of disease d.

    Scaling every h_d by the same factor keeps the diseases' relative costs and makes Σ S_d·N_d = B (up to
    the 分 each S_d is rounded to). A planned disease without history cannot be priced this way: it is left
    out of Σ h_d·N_d and reported, for staff to set its standard by hand.
    """
    per_head = {
        code: Decimal(paid) / history_heads[code]
        for code, paid in history_paid.items()
        if history_heads.get(code, 0) > 0
    }
    weighted = sum((per_head[code] * n for code, n in planned_heads.items() if code in per_head), ZERO)
    if weighted == ZERO:
        raise ValueError("没有可用于测算的历史二类门特就诊人头和统筹支付，无法测算人头标准")
    scale = Decimal(budget) / weighted
    return StandardProposal(
        standards={code: q2(h * scale) for code, h in per_head.items()},
        per_head_history=per_head,
        planned_heads=dict(planned_heads),
        budget=Decimal(budget),
        weighted_history=weighted,
        missing_history=tuple(sorted(code for code, n in planned_heads.items() if n and code not in per_head)),
    )


# --- Gather ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpecialOutpatientInputs:
    unit_code: str
    unit_name: str
    heads_by_disease: dict[str, int]  # actual heads
    planned_heads_by_disease: dict[str, int]  # designations of the year
    standard_sum: Decimal  # Σ S_d over the institution's actual heads
    weighted_sum: Decimal  # Σ S_d·w over the institution's actual heads
    calibration: Decimal  # k over the whole city's actual heads
    plan_weighted_sum: Decimal  # Σ S_d·w over the institution's designations
    plan_calibration: Decimal  # k over the whole city's designations
    plan_quota: Decimal  # Q_plan, the basis of the monthly prepayments
    actual: Decimal  # A: 统筹支付 of designated heads' 二类门特 claims at the institution
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Unit:
    code: str
    name: str
    county_code: str
    city_code: str | None


def _in_region(unit: _Unit, region_code: str | None) -> bool:
    # A run names a county; a run naming the city itself covers all of it.
    return region_code is None or region_code in (unit.county_code, unit.city_code)


def _has_claim(year: int) -> Exists:
    """For a designation row: at least one 二类门特 claim of its person and disease at its institution in the year."""
    return Exists(OutpatientClaim.objects.filter(
        person=OuterRef("person"), disease=OuterRef("disease"), institution=OuterRef("institution"),
        visit_type=VisitType.SPECIAL_CLASS2, visit_date__range=(datetime.date(year, 1, 1), datetime.date(year, 12, 31)),
    ))


def _head_rows(year: int, params: SpecialOutpatientParams, claimed_keys):
    """Designations of the year counted by (institution, disease, age class, 一类 class, actual head).

    One GROUP BY over the whole city: calibration needs every institution's heads even when the run
    settles a single county. A designation is an actual head when its (person, disease, institution)
    is among `claimed_keys` (see `_claimed`), the `_has_claim` test without a second pass over the claims.
    """
    first, last = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
    class1 = DiseaseRegistration.objects.filter(
        person=OuterRef("person"), disease__category=DiseaseCategory.SPECIAL_CLASS1, filed_on__lte=last,
    ).filter(Q(ended_on__isnull=True) | Q(ended_on__gte=first))
    # Age ≥ n in full years on 1 January ⇔ born on or before 1 January of year − n (no leap-day edge).
    cutoff = datetime.date(year - params.risk_age, 1, 1)
    return (
        SpecialDesignation.objects.filter(year=year)
        .annotate(
            is_actual=_key_in(claimed_keys),
            is_class1=Exists(class1),
            is_aged=ExpressionWrapper(Q(person__birth_date__lte=cutoff), output_field=BooleanField()),
        )
        .values(
            "institution__code", "institution__name", "institution__county__code",
            "institution__county__parent__code", "disease__code", "disease__name",
            "is_actual", "is_aged", "is_class1",
        )
        .annotate(heads=Count("id"))
        .order_by()
    )


def _designated_claims(year: int):
    """二类门特 claims of the year whose person and disease are designated to the claim's institution."""
    first, last = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
    designated = SpecialDesignation.objects.filter(
        year=year, person=OuterRef("person"), disease=OuterRef("disease"), institution=OuterRef("institution"),
    )
    return OutpatientClaim.objects.filter(
        visit_type=VisitType.SPECIAL_CLASS2, visit_date__range=(first, last),
    ).filter(Exists(designated))


def _key_in(keys) -> RawSQL:
    """Whether a designation's (person, disease, institution) is one of `keys` (a hashed list, not a join)."""
    table = SpecialDesignation._meta.db_table
    columns = ", ".join(f'"{table}"."{column}"' for column in ("person_id", "disease_id", "institution_id"))
    return RawSQL(
        f"({columns}) IN (SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]))",
        [[key[i] for key in keys] for i in range(3)], output_field=BooleanField(),
    )


def _claimed(year: int):
    """One pass over the year's 二类门特 claims for both uses of `_designated_claims`: the designation keys
    (person, disease, institution) with at least one claim (the actual heads), and Σ 统筹支付 per
    institution id (A).

    Written as a join to the year's distinct designation keys (a few thousand rows, hashed) rather
    than the ORM's EXISTS: the planner guessed one row for that semi-join and looped over every
    institution for each of the 100 k claims it returned (39 s on the city data; 3 s this way). The
    head count's own EXISTS was a second full scan of the claims; both now come from this one, as
    grouping sets: per key, and per institution.
    """
    sql = f"""
        SELECT c.institution_id, c.person_id, c.disease_id, SUM(c.fund_paid), GROUPING(c.person_id) = 1
          FROM {OutpatientClaim._meta.db_table} c
          JOIN (SELECT DISTINCT person_id, disease_id, institution_id
                  FROM {SpecialDesignation._meta.db_table} WHERE year = %s) d
            ON d.person_id = c.person_id AND d.disease_id = c.disease_id AND d.institution_id = c.institution_id
         WHERE c.visit_type = %s AND c.visit_date BETWEEN %s AND %s
         GROUP BY GROUPING SETS ((c.institution_id, c.person_id, c.disease_id), (c.institution_id))
    """
    first, last = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
    with connection.cursor() as cursor:
        cursor.execute(sql, [year, VisitType.SPECIAL_CLASS2, first, last])
        rows = cursor.fetchall()
    keys = [(person, disease, institution) for institution, person, disease, _, total in rows if not total]
    paid = {institution: amount for institution, _, _, amount, total in rows if total}
    return keys, paid


def _actual_by_institution(paid_by_id: Mapping[int, Decimal], region_code: str | None) -> dict[str, Decimal]:
    """Σ 统筹支付 of `_designated_claims` per institution code of the run's region (from `_claimed`)."""
    institutions = Institution.objects.all()
    if region_code:
        institutions = institutions.filter(Q(county__code=region_code) | Q(county__parent__code=region_code))
    codes = dict(institutions.values_list("pk", "code"))
    return {codes[pk]: paid or ZERO for pk, paid in paid_by_id.items() if pk in codes}


def _approved_standards(year: int) -> dict[str, Decimal]:
    approved = SpecialStandard.objects.filter(year=year, status=ApprovalStatus.APPROVED)
    return dict(approved.values_list("disease__code", "amount"))


def _missing_standard_warnings(year, actual_heads: Mapping[str, int], names, standards) -> tuple[str, ...]:
    return tuple(
        f"病种{names[code]}（{code}）没有{year}年度已审批的二类门特人头标准，本机构该病种{n}个实际就诊人头未计入定额"
        for code, n in sorted(actual_heads.items())
        if code not in standards
    )


def gather_inputs(
    ctx: RunContext, params: SpecialOutpatientParams, with_actual: bool = True,
) -> dict[str, SpecialOutpatientInputs]:
    """One input per treating institution in the run's region; `with_actual=False` skips A (prepayments)."""
    standards = _approved_standards(ctx.year)
    units: dict[str, _Unit] = {}
    names: dict[str, str] = {}
    actual_classes: dict[str, list[HeadClass]] = {}
    planned_classes: dict[str, list[HeadClass]] = {}
    with S.year_scale():
        claimed_keys, paid_by_id = _claimed(ctx.year)
        head_rows = list(_head_rows(ctx.year, params, claimed_keys))
    actual_paid = _actual_by_institution(paid_by_id, ctx.region_code) if with_actual else {}
    for row in head_rows:
        code = row["institution__code"]
        units.setdefault(code, _Unit(
            code, row["institution__name"], row["institution__county__code"], row["institution__county__parent__code"],
        ))
        names[row["disease__code"]] = row["disease__name"]
        cls = HeadClass(row["disease__code"], row["is_aged"], row["is_class1"], row["heads"])
        planned_classes.setdefault(code, []).append(cls)
        if row["is_actual"]:
            actual_classes.setdefault(code, []).append(cls)

    city = {
        "actual": standard_sums((c for cs in actual_classes.values() for c in cs), standards, params),
        "planned": standard_sums((c for cs in planned_classes.values() for c in cs), standards, params),
    }
    k = calibration_factor(*city["actual"])
    k_plan = calibration_factor(*city["planned"])

    inputs = {}
    for code, unit in sorted(units.items()):
        if not _in_region(unit, ctx.region_code):
            continue
        heads = _count_by_disease(actual_classes.get(code, ()))
        planned = _count_by_disease(planned_classes[code])
        standard_sum, weighted_sum = standard_sums(actual_classes.get(code, ()), standards, params)
        _, plan_weighted = standard_sums(planned_classes[code], standards, params)
        inputs[code] = SpecialOutpatientInputs(
            unit_code=code,
            unit_name=unit.name,
            heads_by_disease=heads,
            planned_heads_by_disease=planned,
            standard_sum=standard_sum,
            weighted_sum=weighted_sum,
            calibration=k,
            plan_weighted_sum=plan_weighted,
            plan_calibration=k_plan,
            plan_quota=institution_quota(k_plan, plan_weighted),
            actual=actual_paid.get(code, ZERO),
            warnings=_missing_standard_warnings(ctx.year, heads, names, standards),
        )
    return inputs


def _count_by_disease(classes: Iterable[HeadClass]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cls in classes:
        counts[cls.disease_code] = counts.get(cls.disease_code, 0) + cls.heads
    return dict(sorted(counts.items()))


# --- The rule --------------------------------------------------------------------------------


@register
class SpecialOutpatientRule(SchemeRule):
    """Unit = the treating institution of the year's 二类门特 designations.

    Every institution with a designation is a unit, even with no actual head: it was prepaid on its plan
    and its year-end statement must recover that.
    """

    scheme = Scheme.SPECIAL_OUTPATIENT.value
    params_class = SpecialOutpatientParams
    figure_notes = {
        "quota": "校正系数k × Σ 实际人头的病种标准 × 风险权重，按机构一次四舍五入到分",
        "actual": "本机构二类门特定点病种门诊统筹支付合计",
    }

    # The risk weights are applied while the heads are summed.
    gather_parameters = frozenset({"risk_age", "risk_a", "risk_b"})
    simulation_factors = {"standards": "inputs"}

    def scale_inputs(self, inputs, factors):
        # Every S_d × f scales both sums alike, so the calibration k = Σ S / Σ S·w stays as it is.
        f = factors.standards
        return dataclasses.replace(
            inputs,
            standard_sum=inputs.standard_sum * f,
            weighted_sum=inputs.weighted_sum * f,
            plan_weighted_sum=inputs.plan_weighted_sum * f,
            plan_quota=institution_quota(inputs.plan_calibration, inputs.plan_weighted_sum * f),
        )

    def gather(self, ctx: RunContext, params) -> dict[str, SpecialOutpatientInputs]:
        return gather_inputs(ctx, params)

    def compute(self, inputs: SpecialOutpatientInputs, params, paid: Decimal) -> UnitOutcome:
        quota = institution_quota(inputs.calibration, inputs.weighted_sum)
        actual = q2(inputs.actual)
        sharing = share(quota, actual, params)
        return UnitOutcome.settle(
            unit_code=inputs.unit_code,
            unit_name=inputs.unit_name,
            quota=quota,
            actual=actual,
            unit_part=sharing.unit_part,
            entitled=sharing.entitled,
            paid=paid,
            details={
                "实际人头（按病种）": inputs.heads_by_disease,
                "计划人头（按病种）": inputs.planned_heads_by_disease,
                STANDARD_SUM_KEY: str(inputs.standard_sum),
                "风险调整后标准合计": str(inputs.weighted_sum),
                "校正系数k": str(inputs.calibration),
                "计划风险调整后标准合计": str(inputs.plan_weighted_sum),
                "计划校正系数": str(inputs.plan_calibration),
                "计划定额": str(inputs.plan_quota),
                "超支分担方式": params.overspend_mode,
                "超支分担区间上限": str(q2(params.overspend_tier * quota)),
            },
            warnings=inputs.warnings,
        )

    def finish(self, ctx: RunContext, params, outcomes: list[UnitOutcome]) -> list[str]:
        """A city-wide run must hand out exactly Σ S_d of the city's actual heads, up to ½ 分 per institution."""
        if ctx.region_code is not None or not outcomes:
            return []
        return check_calibration(outcomes)

    def claims_for_unit(self, ctx: RunContext, params, unit_code: str):
        """The claims behind A: the institution's 二类门特 claims of designated persons and diseases."""
        return _designated_claims(ctx.year).filter(institution__code=unit_code)

    def recovered_claims(self, ctx: RunContext, params, unit_codes, claim_ids):
        return dict(
            _designated_claims(ctx.year).filter(pk__in=list(claim_ids), institution__code__in=list(unit_codes))
            .values_list("pk", "institution__code")
        )

    def prepayment(self, ctx: RunContext, params, month: int) -> dict[str, Decimal]:
        """Every month the same: Q_plan / 12 × 95%, by institution.

        Q_plan is computed like Q but on the year's designations (planned heads), with its own calibration
        over all the city's designations, because actual heads are known only at year-end. Institutions
        whose plan is 0 (no approved standard for any of their diseases) get no payment row.
        """
        if not 1 <= month <= 12:
            raise ValueError(f"月份应为1至12，实际为{month}")
        return {
            code: amount
            for code, unit in gather_inputs(ctx, params, with_actual=False).items()
            if (amount := monthly_prepayment(unit.plan_quota, params)) != ZERO
        }


# --- 测算 service -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProposalResult:
    proposal: StandardProposal
    written: tuple[str, ...]  # disease codes whose draft standard was written
    kept_approved: tuple[str, ...]  # disease codes left alone because their standard is already approved


def _refuse(message):
    # Imported here: the engine's services import the scheme registry, not the other way round.
    from ..services import SettlementError

    return SettlementError(message)


def city_budget(year: int, city_code: str | None = None) -> Decimal:
    """B: the `budgets` row(s) of scheme special_outpatient whose 单位编码 is the city's 区划代码.

    The city's division code rather than an invented "CITY": it is a real code the city bureau's scope
    already covers, and the same file format carries it. A row with blank 险种 is the total; without one,
    the 职工 and 居民 rows are added.
    """
    if city_code is None:
        roots = list(Region.objects.filter(parent__isnull=True).values_list("code", flat=True))
        if len(roots) != 1:
            raise _refuse("无法确定市级区划代码，请指定")
        city_code = roots[0]
    rows = Budget.objects.filter(year=year, scheme=Scheme.SPECIAL_OUTPATIENT, unit_code=city_code)
    total = rows.filter(insurance_type="").aggregate(s=Sum("amount"))["s"]
    if total is None:
        total = rows.aggregate(s=Sum("amount"))["s"]
    if total is None:
        raise _refuse(f"缺少{year}年度二类门特预算（方案 special_outpatient，单位编码 {city_code}）")
    return total


def _history(base_years: Iterable[int]) -> tuple[dict[str, Decimal], dict[str, int]]:
    """Σ 统筹支付 and Σ actual heads per disease over the base years, one pair of GROUP BYs per year."""
    paid: dict[str, Decimal] = {}
    heads: dict[str, int] = {}
    for year in base_years:
        for row in _designated_claims(year).values("disease__code").annotate(s=Sum("fund_paid")).order_by():
            paid[row["disease__code"]] = paid.get(row["disease__code"], ZERO) + row["s"]
        actual = SpecialDesignation.objects.filter(year=year).filter(_has_claim(year))
        for row in actual.values("disease__code").annotate(n=Count("id")).order_by():
            heads[row["disease__code"]] = heads.get(row["disease__code"], 0) + row["n"]
    return paid, heads


def propose_special_standards(
    year: int, base_years: Iterable[int] | None = None, city_code: str | None = None, user=None,
) -> ProposalResult:
    """Write the 测算 of `year`'s standards as 草稿 SpecialStandard rows for staff to approve.

    `base_years` defaults to the previous year; PZH asks for data from before national volume-based
    procurement (“国家药品集中采购”前), so staff pass those years when the previous one is distorted.
    An already approved standard is never overwritten. Only the city bureau prices the city's diseases
    (SPEC §1: it approves standards and budgets).
    """
    from alliances.scope import Role

    from ..services import _require

    _require(user, roles={Role.CITY}, action="测算二类门特人头标准")
    base_years = tuple(base_years or (year - 1,))
    budget = city_budget(year, city_code)
    paid, heads = _history(base_years)
    planned = dict(
        SpecialDesignation.objects.filter(year=year).values("disease__code").annotate(n=Count("id"))
        .order_by().values_list("disease__code", "n")
    )
    try:
        proposal = propose_standards(paid, heads, planned, budget)
    except ValueError as exc:
        raise _refuse(f"{exc}（历史年度：{'、'.join(map(str, base_years))}）") from None
    diseases = Disease.objects.in_bulk(list(proposal.standards), field_name="code")
    approved = set(
        SpecialStandard.objects.filter(year=year, status=ApprovalStatus.APPROVED, disease__code__in=list(diseases))
        .values_list("disease__code", flat=True)
    )
    written = []
    with transaction.atomic():
        for code, amount in sorted(proposal.standards.items()):
            if code in approved:
                continue
            SpecialStandard.objects.update_or_create(
                year=year, disease=diseases[code],
                defaults={"amount": amount, "status": ApprovalStatus.DRAFT, "approved_by": None, "approved_at": None},
            )
            written.append(code)
    return ProposalResult(proposal=proposal, written=tuple(written), kept_approved=tuple(sorted(approved)))
