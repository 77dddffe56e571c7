"""The demo's supervision side: `audit` on `seed_demo --size small` finds exactly the planted patterns
(settlement/demo/audit.py PLANTED), and every rule of SPEC §9 has findings to show."""
from decimal import Decimal as D

import pytest
from django.db import transaction
from django.db.models import Count, Q

from settlement.audit.models import Finding
from settlement.audit.rules import registered_rules
from settlement.audit.services import run_audit
from settlement.benefits.models import Relocation
from settlement.benefits.selectors import differing
from settlement.demo import seed_demo
from settlement.demo.audit import PLANTED, SERIAL_PREFIX
from settlement.models import DrgGroup, InpatientCase

YEAR = 2025
pytestmark = pytest.mark.django_db
OUTSIDE = "H460105"  # the out-of-city hospitals the outpatient patterns were planted at


@pytest.fixture(scope="module")
def audited(django_db_setup, django_db_blocker):
    """One seed and one audit for the module, in a transaction rolled back at the end."""
    with django_db_blocker.unblock(), transaction.atomic():
        seed_demo("small", year=YEAR, log=lambda _line: None)
        run_audit(YEAR)
        yield
        transaction.set_rollback(True)


@pytest.fixture
def db_access(audited, django_db_blocker):
    with django_db_blocker.unblock():
        yield


def planted(rule):
    on_planted = (Q(claim__serial__startswith=SERIAL_PREFIX) | Q(case__serial__startswith=SERIAL_PREFIX)
                  | Q(rule="UPC01", evidence_data__adrg="ES2",
                      institution__in=InpatientCase.objects.filter(serial__startswith=SERIAL_PREFIX)
                      .values("institution_id"))
                  | Q(rule="FRQ01", institution__code__startswith=OUTSIDE)
                  | Q(rule="FRQ02", evidence__contains=OUTSIDE))
    return Finding.objects.filter(on_planted, year=YEAR, rule=rule)


@pytest.mark.parametrize("rule", sorted(PLANTED))
def test_each_planted_pattern_is_found_exactly(db_access, rule):
    assert planted(rule).count() == PLANTED[rule]


def test_every_rule_has_findings_on_the_demo(db_access):
    counts = dict(Finding.objects.filter(year=YEAR).values_list("rule").annotate(n=Count("id")))
    assert set(counts) == set(registered_rules())


def test_planted_amounts(db_access):
    # Planted out of the city, unreferred: employee 特病门诊 at 二级 85% − 20 points = 65%.
    assert {f.amount for f in planted("DUP01")} == {D("195.00")}  # 300 × 65%
    assert {f.amount for f in planted("FRQ01")} == {D("130.00")}  # the 11th visit: 200 × 65%
    assert {f.amount for f in planted("FRQ02")} == {D("292.50")}  # 3 × 150 × 65%
    # 3.5 × the group's 病组均次费用 taken to whole 元 (the demo's catalogue is a 测算, not whole 元), to whole
    # 元, less the average itself.
    average = DrgGroup.objects.get(year=YEAR, code="GD19").average_cost
    assert {f.amount for f in planted("HIC01")} == {(average.quantize(D("1")) * D("3.5")).quantize(D("1")) - average}


def test_planted_rows_are_paid_as_the_benefit_table_says(db_access):
    # BEN01's findings are the benefit demo's known differences, none of them a planted row.
    assert not Finding.objects.filter(rule="BEN01", claim__serial__startswith=SERIAL_PREFIX).exists()
    assert not Finding.objects.filter(rule="BEN01", case__serial__startswith=SERIAL_PREFIX).exists()
    assert Finding.objects.filter(rule="BEN01", year=YEAR).count() == differing(YEAR).count() > 0


def test_double_relocation_filings_are_the_rel01_findings(db_access):
    twice = set(Relocation.objects.filter(filed_on__year=YEAR).values("person").annotate(n=Count("id"))
                .filter(n__gte=2).values_list("person", flat=True))
    assert twice and set(Finding.objects.filter(rule="REL01", year=YEAR).values_list("person", flat=True)) == twice
