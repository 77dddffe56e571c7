"""Reads of the benefit engine that several places need: the 核对 page, its export, the audit rule
BEN01 (a thin query over the stored figures), a figure's derivation and a person's relocation year."""
import dataclasses
import datetime

from django.db.models import Count, Q, Sum

from alliances.scope import restrict

from .models import BenefitFigure, Relocation
from .params import REVOKING_FILINGS

TOLERANCE = "0.01"  # SPEC §9 BEN01: |统筹支付 − 应付统筹| > 0.01 元
DIFFERS = Q(difference__gt=TOLERANCE) | Q(difference__lt=f"-{TOLERANCE}")


def differing(year, user=None, region_code=None):
    """Figures of the year whose 统筹支付 differs from 应付统筹 by more than 0.01 元 (BEN01's subjects).

    Each row carries fund_paid, expected and difference (signed: 统筹支付 − 应付统筹, BEN01's 涉及金额).
    """
    figures = BenefitFigure.objects.filter(DIFFERS, year=year)
    if region_code:
        figures = figures.filter(institution__county__code=region_code)
    return restrict(figures, user) if user is not None else figures


def totals_by_institution(figures):
    """Per institution: how many differ, Σ 统筹支付, Σ 应付统筹, Σ difference (largest first)."""
    return list(
        figures.values("institution__code", "institution__name").annotate(
            rows=Count("id"), fund_paid=Sum("fund_paid"), expected=Sum("expected"), difference=Sum("difference"),
        ).order_by("-difference", "institution__code")
    )


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
