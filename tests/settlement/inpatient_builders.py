"""Builders for inpatient-case tests (DRG, bed-day, per-disease). Amounts are strings → Decimal."""
import datetime
import itertools
from decimal import Decimal

from contracts.models import DiseaseCategory
from settlement.models import BedDayQuota, Budget, DiseaseStandard, DrgCoefficient, DrgGroup, InpatientCase, Payment
from tests import factories

_serial = itertools.count(1)

D = Decimal


def day(text):
    return datetime.date.fromisoformat(text)


def case(inst, person, admission, discharge, *, drg="", total="1000.00", personal="200.00", incomplete=False,
         bed_day="", diagnosis="Z00.0", operation="", serial=None):
    total, personal = D(total), D(personal)
    return InpatientCase.objects.create(
        institution=inst, person=person, serial=serial or f"BA{next(_serial):06d}",
        admission_date=day(admission), discharge_date=day(discharge),
        principal_diagnosis=diagnosis, main_operation=operation, drg_code=drg,
        total_cost=total, fund_paid=total - personal, personal_paid=personal,
        incomplete_stay=incomplete, bed_day_category=bed_day,
    )


def group(code, base, average_cost="10000.00", *, year=2025, bed_day_points=None, same_price=False, tcm=False):
    return DrgGroup.objects.create(
        year=year, code=code, name=f"病组{code}", base_points=D(base), average_cost=D(average_cost),
        bed_day_points=None if bed_day_points is None else D(bed_day_points), same_price=same_price, tcm_support=tcm,
    )


def coefficient(inst, value, year=2025):
    return DrgCoefficient.objects.create(year=year, institution=inst, coefficient=D(value))


def budget(unit_code, amount, *, scheme="drg", year=2025, insurance_type=""):
    return Budget.objects.create(
        year=year, scheme=scheme, unit_code=unit_code, insurance_type=insurance_type, amount=D(amount),
    )


def payment(unit_code, amount, *, scheme, year=2025, month=1):
    return Payment.objects.create(year=year, month=month, scheme=scheme, unit_code=unit_code, amount=D(amount))


def bed_day_quota(level, category, amount, year=2025):
    return BedDayQuota.objects.create(year=year, level=level, category=category, amount=D(amount))


def disease_standard(code, level, amount, *, operation="", year=2025):
    from contracts.models import Disease

    disease = Disease.objects.filter(code=code).first() or factories.disease(code=code, category=DiseaseCategory.PER_DISEASE)
    return DiseaseStandard.objects.create(
        year=year, disease=disease, main_operation=operation, level=level, amount=D(amount),
    )
