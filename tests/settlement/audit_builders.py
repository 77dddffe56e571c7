"""Builders for audit tests: outpatient claims with a running serial; cases come from inpatient_builders."""
import datetime
import itertools
from decimal import Decimal

from settlement.audit.models import Finding
from settlement.audit.services import run_audit
from settlement.models import OutpatientClaim

_serial = itertools.count(1)


def claim(inst, person, visit, *, total="100.00", personal="30.00", visit_type="普通门诊", serial=None):
    total, personal = Decimal(total), Decimal(personal)
    return OutpatientClaim.objects.create(
        institution=inst, person=person, serial=serial or f"MZ{next(_serial):07d}",
        visit_date=datetime.date.fromisoformat(visit), insurance_type=person.insurance_type, visit_type=visit_type,
        total_cost=total, fund_paid=total - personal, personal_paid=personal,
    )


def audit(rule, year=2025, region=None):
    run_audit(year, [rule], region)
    return list(Finding.objects.filter(rule=rule, year=year).order_by("subject"))
