"""Reads of the benefit engine that several places need: the 核对 page, its export, the audit rule
BEN01 (a thin query over the stored figures), a claim's or case's derivation (re-derived: one
person-year by index) and a person's relocation year."""
import dataclasses
import datetime
import functools
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from alliances.scope import restrict
from settlement.models import InpatientCase, OutpatientClaim

from . import arithmetic
from .arithmetic import TOLERANCE  # SPEC §9 BEN01: |统筹支付 − 应付统筹| > 0.01 元 (re-exported for the audit rule)
from .models import BenefitComputation, BenefitFigure, BenefitRule, CareType, Outcome, Relocation, UnmatchedTotal
from .params import REVOKING_FILINGS

DIFFERS = Q(difference__gt=TOLERANCE) | Q(difference__lt=f"-{TOLERANCE}")


def differing(year, user=None, region_code=None):
    """Figures of the year whose 统筹支付 differs from 应付统筹 by more than 0.01 元 (BEN01's subjects).

    Each row carries fund_paid, expected and difference (signed: 统筹支付 − 应付统筹, BEN01's 涉及金额).
    """
    figures = BenefitFigure.objects.filter(DIFFERS, year=year)
    if region_code:
        figures = figures.filter(institution__county__code=region_code)
    return restrict(figures, user) if user is not None else figures


def figure_keys(ids):
    """The `BenefitFigure` rows of these view ids, as a Q each branch of the view reads by its index.

    A matching claim's id is 2 × its claim's id, an expression no index holds: asked for by `id` alone,
    that branch would be scanned whole. Each arm names one branch by its constants (`stored`,
    `care_type`), so the planner keeps only the arm of its own branch: the stored rows by their
    primary key, the matching claims and cases by theirs.
    """
    ids = [int(pk) for pk in ids]
    claims = [pk // 2 for pk in ids if pk % 2 == 0]
    cases = [pk // 2 for pk in ids if pk % 2 == 1]
    match = Q(stored=True, pk__in=ids)
    if claims:
        match |= Q(stored=False, care_type=CareType.OUTPATIENT, claim_id__in=claims)
    if cases:
        match |= Q(stored=False, care_type=CareType.INPATIENT, case_id__in=cases)
    return match


def totals_by_institution(figures):
    """Per institution: how many differ, Σ 统筹支付, Σ 应付统筹, Σ difference (largest first).

    Over the stored rows only (不一致 and 无适用规则, `UnmatchedFigure`): the view's branches of the
    matching claims and cases carry the constant outcome 一致, so the planner drops them and one
    grouped scan of the year's ~136 k stored rows answers, whatever else the filter says.
    """
    return list(
        figures.exclude(outcome=Outcome.MATCHES).order_by().values("institution__code", "institution__name").annotate(
            rows=Count("id"), fund_paid=Sum("fund_paid"), expected=Sum("expected"), difference=Sum("difference"),
        ).order_by("-difference", "institution__code")
    )


# The 核对 page's filters the stored sums hold (models.UnmatchedTotal): its parameter → the sums' column.
_STORED_BY = {"year": "year", "institution__county__id__exact": "institution__county", "care_type__exact": "care_type",
              "level__exact": "level", "visit_type": "visit_type"}
_STORED_OUTCOMES = {"yes": [Outcome.DIFFERS], "unruled": [Outcome.UNRULED], "all": [Outcome.DIFFERS, Outcome.UNRULED]}
_PAGING = {"p", "o", "k"}


def stored_totals(params, user):
    """`totals_by_institution` of the 核对 page's filter read from the stored sums, or None.

    `params` are the page's query parameters (already checked by its filters); None when they name
    something the sums do not hold (a search, another lookup): then the rows themselves are summed.
    """
    totals = restrict(UnmatchedTotal.objects.all(), user) if user is not None else UnmatchedTotal.objects.all()
    outcomes = _STORED_OUTCOMES["yes"]  # the page's default: what differs
    for key, value in params.items():
        if key in _PAGING:
            continue
        if key == "differs":
            outcomes = _STORED_OUTCOMES.get(value)
            if outcomes is None:
                return None
        elif key in _STORED_BY:
            totals = totals.filter(**{_STORED_BY[key]: value})
        else:
            return None
    return list(
        totals.filter(outcome__in=outcomes).values("institution__code", "institution__name").annotate(
            rows=Sum("rows"), fund_paid=Sum("fund_paid"), expected=Sum("expected"), difference=Sum("difference"),
        ).order_by("-difference", "institution__code")
    )


@dataclasses.dataclass
class Derivation:
    """A claim's or case's 应付统筹 re-derived by the computation's own SQL, figure by figure."""

    id: int
    care_type: str
    claim_id: int | None
    case_id: int | None
    serial: str
    institution_id: int
    person_id: int
    service_date: datetime.date
    level: str
    visit_type: str
    in_scope: Decimal
    rule_id: int | None
    deductible: Decimal | None
    joined_case_id: int | None
    joined_deductible: Decimal | None
    deductible_used: Decimal | None
    base_ratio: Decimal | None
    referral_points: Decimal
    cross_county_points: Decimal
    out_of_city_points: Decimal
    relocation: str
    ratio: Decimal | None
    before_limit: Decimal | None
    annual_limit: Decimal | None
    limit_left: Decimal | None
    expected: Decimal | None
    fund_paid: Decimal
    difference: Decimal | None
    year: int = 0

    @functools.cached_property
    def rule(self):
        return BenefitRule.objects.filter(pk=self.rule_id).first() if self.rule_id else None

    @functools.cached_property
    def joined_case(self):
        if not self.joined_case_id:
            return None
        return InpatientCase.objects.select_related("institution").filter(pk=self.joined_case_id).first()


def _derive(year, care_type, person_id=None):
    from .services import computation_inputs

    _, values = computation_inputs(year)
    names = arithmetic.names_for()
    person = person_id is not None
    statement = (arithmetic.outpatient_derived(names, person) if care_type == CareType.OUTPATIENT
                 else arithmetic.inpatient_derived(names, person))
    with transaction.atomic(), connection.cursor() as cursor:
        # The rule map's estimate (every level × 险种 × 门诊类型 × disease) passes jit_above_cost: compiling
        # it took 4.7 of a claim page's 4.8 s, for a statement that runs in 0.1 s over one person-year.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(statement.inline(), {**values, "person": person_id})
        columns = [c.name for c in cursor.description]
        return [Derivation(**dict(zip(columns, row)), year=year) for row in cursor.fetchall()]


def derivations(year):
    """Every claim's and case's derivation of the year (the tests' whole-year view; nothing is stored)."""
    return _derive(year, CareType.OUTPATIENT) + _derive(year, CareType.INPATIENT)


def derivation(row):
    """The derivation of one claim or case: its person-year re-derived, this row picked.

    None before the year's 应付统筹 was computed; refused (Refused) when the year's table or policy
    is no longer approved.
    """
    if isinstance(row, OutpatientClaim):
        care_type, year, key = CareType.OUTPATIENT, row.visit_date.year, "claim_id"
    else:
        care_type, year, key = CareType.INPATIENT, row.discharge_date.year, "case_id"
    if not BenefitComputation.objects.filter(year=year).exists():
        return None
    return next((d for d in _derive(year, care_type, row.person_id) if getattr(d, key) == row.pk), None)


def derivation_lines(figure):
    """The figure explained line by line, in Chinese, in the order the arithmetic runs."""
    if figure.rule_id is None:
        return ["没有适用的待遇规则（该年度待遇政策表中没有该险种、就医类型和机构等级的规则），未测算"]
    rule = figure.rule
    narrowed = "、".join(filter(None, [rule.visit_type, f"病种{rule.disease_prefix}" if rule.disease_prefix else ""]))
    lines = [
        f"政策范围内费用：{figure.in_scope}元",
        f"适用规则：{rule}（{narrowed or '一般规则'}）：起付标准{rule.deductible}元，报销比例{rule.ratio}%，"
        f"年度限额{'不限' if rule.annual_limit is None else f'{rule.annual_limit}元'}",
    ]
    if figure.joined_case_id:
        joined = figure.joined_case
        lines.append(
            f"转诊合并起付：与{joined.institution.name}住院病例{joined.serial}（{joined.discharge_date}出院）视同一次住院，"
            f"起付标准 max(0, {figure.deductible} − {figure.joined_deductible}) 元"
        )
    scope = "本人本年度该规则累计" if figure.care_type == "门诊" else "本次住院"
    lines.append(f"计入起付：{figure.deductible_used}元（{scope}）")
    ratio = [f"基础比例{figure.base_ratio}%"]
    if figure.referral_points:
        ratio.append(f"下转 +{figure.referral_points}")
    if figure.cross_county_points:
        ratio.append(f"市内跨县 −{figure.cross_county_points}")
    if figure.out_of_city_points:
        ratio.append(f"市外未转诊 −{figure.out_of_city_points}")
    lines.append(f"报销比例：{' '.join(ratio)} = {figure.ratio}%（限0至100%）")
    if figure.relocation:
        lines.append(f"异地安置：{figure.relocation}")
    lines.append(f"限额前统筹：({figure.in_scope} − {figure.deductible_used}) × {figure.ratio}% = {figure.before_limit}元（四舍五入到分）")
    if figure.annual_limit is not None:
        lines.append(f"年度限额{figure.annual_limit}元，本次前剩余{figure.limit_left}元")
    lines.append(f"应付统筹：{figure.expected}元；上报统筹支付：{figure.fund_paid}元；差额：{figure.difference}元")
    return lines


@dataclasses.dataclass(frozen=True)
class RelocationYear:
    year: int
    filings: list
    revoked: bool
    reason: str


def relocation_year(person_id, year):
    """A person's relocation filings dated in the year, and whether the year's relocation is revoked."""
    filings = list(Relocation.objects.filter(
        person_id=person_id, filed_on__gte=datetime.date(year, 1, 1), filed_on__lte=datetime.date(year, 12, 31),
    ).order_by("filed_on"))
    revoked = len(filings) >= REVOKING_FILINGS
    reason = (f"{year}年备案{len(filings)}次（{'、'.join(str(f.filed_on) for f in filings)}），"
              f"一年内备案{REVOKING_FILINGS}次及以上，取消当年度异地安置待遇") if revoked else ""
    return RelocationYear(year, filings, revoked, reason)
