"""测算 and approval of capitation standards (SPEC §6.1).

`propose_capitation_standards` writes DRAFT rows from history: per class (insurance type × age band)
the average 统筹支付 of 普通门诊 per person-year of heads, and per class × disease the average
慢病/特病门诊 统筹支付 for that disease per registered person-year. Staff adjust the drafts, then
`approve_capitation_standards` makes them usable; a settlement reads approved standards only.
"""
from decimal import Decimal

from django.db import transaction

from alliances.scope import Role
from settlement.approval import approve_drafts
from settlement.models import ApprovalStatus, CapitationStandard

from .base import q2
from .schemes.capitation import history_per_class
from .services import SettlementError, _require, check_year


def propose_capitation_standards(year, base_years=2, valid_years=2, user=None):
    """Draft standards for `year` from the `base_years` years before it; approved rows are kept.

    Returns {"created": n, "updated": n, "kept_approved": n}.
    """
    year = check_year(year)
    _require(user, roles={Role.CITY, Role.COUNTY}, region_code=None, action="测算人头标准")
    base_years = int(base_years)
    if not 1 <= base_years <= 5:
        raise SettlementError("测算所用历史年数应在1至5年之间")
    base_totals, disease_totals = {}, {}
    for past in range(year - base_years, year):
        base, disease = history_per_class(past)
        for totals, rows in ((base_totals, base), (disease_totals, disease)):
            for key, (person_months, fund) in rows.items():
                pm, total = totals.get(key, (0, Decimal("0")))
                totals[key] = (pm + person_months, total + fund)
    if not base_totals:
        raise SettlementError(f"{year - base_years}至{year - 1}年没有可用于测算的签约人头数据")
    proposals = {}
    for (insurance_type, age_band), (pm, fund) in base_totals.items():
        if pm:
            # 元 per person-year = Σ 统筹支付 ÷ (person-months ÷ 12)
            proposals[(insurance_type, age_band, None)] = q2(fund * 12 / pm)
    for (insurance_type, age_band, disease_id), (pm, fund) in disease_totals.items():
        if pm:
            proposals[(insurance_type, age_band, disease_id)] = q2(fund * 12 / pm)
    summary = {"created": 0, "updated": 0, "kept_approved": 0}
    with transaction.atomic():
        for (insurance_type, age_band, disease_id), amount in sorted(proposals.items(), key=lambda i: str(i[0])):
            row = CapitationStandard.objects.select_for_update().filter(
                year=year, insurance_type=insurance_type, age_band=age_band, disease_id=disease_id,
            ).first()
            if row is None:
                CapitationStandard.objects.create(
                    year=year, insurance_type=insurance_type, age_band=age_band, disease_id=disease_id,
                    amount=amount, valid_years=valid_years, status=ApprovalStatus.DRAFT,
                )
                summary["created"] += 1
            elif row.status == ApprovalStatus.APPROVED:
                summary["kept_approved"] += 1
            else:
                row.amount, row.valid_years = amount, valid_years
                row.save()
                summary["updated"] += 1
    return summary


def approve_capitation_standards(queryset, user=None):
    """Approve the given standards (the city bureau's act); returns how many changed."""
    return approve_drafts(queryset, user, draft=ApprovalStatus.DRAFT, approved=ApprovalStatus.APPROVED,
                          what="审批人头标准")
