"""The demo's benefit side: an approved FJ-conformant table, referrals of every direction, joined
stays, relocations filed twice, and exactly the known share of claims differing from 应付统筹."""
import pytest
from django.db.models import Count, Q

from settlement.benefits.models import BenefitFigure, BenefitTable, Outcome, Referral, Relocation
from settlement.benefits.selectors import derivations, differing
from settlement.benefits.services import table_checks
from settlement.demo import seed_demo
from settlement.models import ApprovalStatus, InpatientCase, OutpatientClaim

YEAR = 2025
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """One seed for the module, in a transaction rolled back at the end (as test_seed_demo_settles)."""
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        seed_demo("small", year=YEAR, log=lambda _line: None)
        yield
        transaction.set_rollback(True)


@pytest.fixture
def db_access(seeded, django_db_blocker):
    with django_db_blocker.unblock():
        yield


def test_table_is_approved_and_conformant(db_access):
    assert BenefitTable.objects.get(year=YEAR).status == ApprovalStatus.APPROVED
    assert all(result.passed for result in table_checks(YEAR))


def test_referrals_relocations_and_joined_stays(db_access):
    directions = dict(Referral.objects.values_list("direction").annotate(n=Count("id")))
    assert set(directions) == {"上转", "下转", "转外"}
    # Only differing figures are stored (issue 14): the joins are seen in the year's derivations.
    assert any(d.joined_case_id for d in derivations(YEAR))
    twice = Relocation.objects.values("person").annotate(n=Count("id")).filter(n__gte=2)
    assert twice.exists() and Relocation.objects.values("person").annotate(n=Count("id")).filter(n=1).exists()


def test_every_claim_and_case_is_figured_and_only_the_known_share_differs(db_access):
    figures = BenefitFigure.objects.filter(year=YEAR)
    assert figures.filter(claim__isnull=False).count() == OutpatientClaim.objects.filter(visit_date__year=YEAR).count()
    assert figures.filter(case__isnull=False).count() == InpatientCase.objects.filter(discharge_date__year=YEAR).count()
    assert not figures.filter(outcome=Outcome.UNRULED).exists()
    unreferred_out = [d.claim_id for d in derivations(YEAR) if d.claim_id and d.out_of_city_points == 20]
    known = (
        Q(care_type="住院", level="一级", person__insurance_type="居民")  # paid at 75%, FJ table 70%
        | Q(claim__referral=True)  # +2 points for an upward referral
        | Q(claim__serial__startswith="SW", claim__in=unreferred_out)  # out of city, paid as if referred/relocated
    )
    wrong = differing(YEAR)
    assert wrong.exists() and not wrong.exclude(known).exists()
    # the known share is small: the table is the one the claims were paid by
    assert wrong.count() * 50 < figures.count()
