"""Builders for settlement-engine tests (policies, standards, claims) on top of tests/factories.py."""
import datetime
import itertools
from decimal import Decimal

from django.utils import timezone

from settlement.engine.models import PaymentPolicy
from settlement.models import ApprovalStatus, CapitationStandard, OutpatientClaim

_serials = itertools.count(1)
D = Decimal


def policy(scheme="capitation", year=2025, region=None, approved=True, **parameters):
    from settlement.engine.base import get_rule
    from settlement.engine.params import defaults_of

    data = {**defaults_of(get_rule(scheme).params_class), **parameters}
    return PaymentPolicy.objects.create(
        scheme=scheme, year=year, region=region, name="测试政策", parameters=data,
        status=ApprovalStatus.APPROVED if approved else ApprovalStatus.DRAFT,
        approved_at=timezone.now() if approved else None,
    )


def standard(year, insurance_type, age_band, amount, disease=None, approved=True, valid_years=2):
    return CapitationStandard.objects.create(
        year=year, insurance_type=insurance_type, age_band=age_band, disease=disease, amount=D(amount),
        valid_years=valid_years, status=ApprovalStatus.APPROVED if approved else ApprovalStatus.DRAFT,
    )


def standards_2025(young="1200.00", old="2400.00"):
    """普通门诊 standards for every class: 100.00 / 200.00 元 per person-month."""
    for insurance_type in ("居民", "职工"):
        standard(2025, insurance_type, "60周岁及以下", young)
        standard(2025, insurance_type, "60周岁以上", old)


def claim(person, inst, day, fund, visit_type="普通门诊", disease=None, personal="0.00"):
    fund, personal = D(fund), D(personal)
    return OutpatientClaim.objects.create(
        institution=inst, serial=f"S{next(_serials):08d}", person=person, visit_date=day,
        insurance_type=person.insurance_type, visit_type=visit_type, disease=disease,
        total_cost=fund + personal, fund_paid=fund, personal_paid=personal,
    )


def d(text):
    return datetime.date.fromisoformat(text)
