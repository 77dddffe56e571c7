"""Capitation gather outside a transaction: the heads on a second connection beside the claims, the
committed segment table and its clean-up, and the membership lookup written into the claims
query. Figures are worked by hand in the comments."""
import datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction

from alliances.models import Membership
from contracts.models import DiseaseRegistration
from settlement.engine.base import RunContext
from settlement.engine.schemes import capitation
from settlement.engine.schemes.capitation import CapitationParams, gather_capitation
from tests import factories
from tests.settlement.engine_data import claim, d, standard, standards_2025

D = Decimal
CTX = RunContext("capitation", 2025)
YOUNG = datetime.date(1970, 5, 17)


def segment_tables():
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'capitation\\_seg\\_%%' ORDER BY 1")
        return [name for (name,) in cursor.fetchall()]


def build_city():
    """Two alliances, an institution moving from A to B on 16 June, members of A in force all year
    (eleven of them, so that PostgreSQL probes the pairs as a hashed list), registrations, and
    claims of every visit type."""
    county = factories.region()
    lead_a, lead_b = factories.institution(county=county), factories.institution(county=county)
    a, b = factories.alliance(lead=lead_a), factories.alliance(lead=lead_b)
    members_a = [lead_a]
    for _ in range(10):
        inst = factories.institution(county=county)
        Membership.objects.create(alliance=a, institution=inst, joined_on=d("2020-01-01"))
        members_a.append(inst)
    moving = factories.institution(county=county)
    Membership.objects.create(alliance=a, institution=moving, joined_on=d("2020-01-01"), left_on=d("2025-06-15"))
    Membership.objects.create(alliance=b, institution=moving, joined_on=d("2025-06-16"))
    standards_2025()
    chronic = factories.disease(name="高血压")
    standard(2025, "居民", "60周岁及以下", "600.00", disease=chronic)
    people = []
    for index, inst in enumerate(members_a + [moving, lead_b]):
        p = factories.person(county, YOUNG if index % 3 else d("1950-03-01"))
        factories.contract(p, inst, d("2024-01-01"), verified_on=d("2024-01-02"))
        if index % 2:
            DiseaseRegistration.objects.create(person=p, disease=chronic, filed_on=d("2025-03-10"))
        people.append((p, inst))
    for index, (p, inst) in enumerate(people):
        claim(p, inst, d("2025-03-10"), f"{10 + index}.00")
        claim(p, lead_b, d("2025-08-10"), "7.00")
        claim(p, moving, d("2025-09-01"), "5.00", visit_type="慢病门诊")
        claim(p, inst, d("2025-09-02"), "99.00", visit_type="特病门诊")
    return a, b


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["add_all", "highest_only"])
def test_side_by_side_gathers_what_one_transaction_gathers(mode):
    build_city()
    params = CapitationParams(disease_add_mode=mode)
    beside = gather_capitation(CTX, params)          # no transaction: heads on a second connection
    with transaction.atomic():
        alone = gather_capitation(CTX, params)       # inside one: every query on this connection
    assert beside == alone
    assert segment_tables() == []


@pytest.mark.django_db(transaction=True)
def test_inside_and_outside_with_a_transfer_and_a_hashed_member_list():
    a, b = build_city()
    units = gather_capitation(CTX, CapitationParams())
    ua, ub = units[a.code], units[b.code]
    # 13 heads: 11 with A's members (the lead and ten), the mover's head, B's lead's head.
    # A's heads: the 11 all year, and the mover's head January–May (its institution leaves A on
    # 15 June, so it is B's from June). Claims of A's heads:
    #   on 10 March at their own institution, inside: 10 + 11 + … + 20 = 165.00, and the mover's
    #     head (index 11) at the moving institution, still A's member in March: 21.00 → 186.00
    #   on 10 August at B's lead, outside: 11 × 7.00 = 77.00
    #   on 1 September 慢病门诊 at the moving institution, B's by then, outside: 11 × 5.00 = 55.00
    #   特病门诊 is not counted
    assert (ua.actual_inside, ua.actual_outside) == (D("186.00"), D("132.00"))
    assert (ua.claims_inside, ua.claims_outside) == (12, 22)
    # B's heads: the mover's head June–December and B's lead's head all year.
    #   10 March: B's lead's head at B's lead, inside: 22.00 (the mover's March claim is A's)
    #   10 August at B's lead: 2 × 7.00 inside; 1 September at the moving institution: 2 × 5.00 inside
    assert (ub.actual_inside, ub.actual_outside) == (D("46.00"), D("0.00"))
    assert (ub.claims_inside, ub.claims_outside) == (5, 0)


@pytest.mark.django_db
def test_a_member_that_leaves_and_rejoins_counts_inside_only_while_a_member():
    county = factories.region()
    lead = factories.institution(county=county)
    alliance = factories.alliance(lead=lead)
    standards_2025()
    clinic = factories.institution(county=county)
    # A member until 31 March, again from 1 August: in force on the last day of Jan–Mar and Aug–Dec.
    Membership.objects.create(alliance=alliance, institution=clinic, joined_on=d("2020-01-01"), left_on=d("2025-03-31"))
    Membership.objects.create(alliance=alliance, institution=clinic, joined_on=d("2025-08-01"))
    p = factories.person(county, YOUNG)
    factories.contract(p, lead, d("2024-01-01"), verified_on=d("2024-01-02"))
    claim(p, clinic, d("2025-03-31"), "1.00")   # inside
    claim(p, clinic, d("2025-04-01"), "2.00")   # outside
    claim(p, clinic, d("2025-07-31"), "4.00")   # outside
    claim(p, clinic, d("2025-08-01"), "8.00")   # inside
    claim(p, clinic, d("2025-12-31"), "16.00")  # inside
    unit = gather_capitation(CTX, CapitationParams())[alliance.code]
    assert (unit.actual_inside, unit.actual_outside) == (D("25.00"), D("6.00"))
    assert (unit.claims_inside, unit.claims_outside) == (3, 2)


@pytest.mark.django_db(transaction=True)
def test_a_table_left_by_a_killed_gather_is_dropped_and_a_live_ones_kept():
    build_city()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), max(pid) + 100000 FROM pg_stat_activity")
        own, gone = cursor.fetchone()
        cursor.execute(f"CREATE UNLOGGED TABLE capitation_seg_{gone}_deadbeef (person_id bigint)")
        cursor.execute(f"CREATE UNLOGGED TABLE capitation_seg_{own}_0000live (person_id bigint)")
    try:
        gather_capitation(CTX, CapitationParams())
        assert segment_tables() == [f"capitation_seg_{own}_0000live"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS capitation_seg_{own}_0000live")
            cursor.execute(f"DROP TABLE IF EXISTS capitation_seg_{gone}_deadbeef")


@pytest.mark.django_db(transaction=True)
def test_a_failing_claims_query_leaves_no_table_behind(monkeypatch):
    build_city()

    def broken(year, params, segments):
        raise RuntimeError("断开")

    monkeypatch.setattr(capitation, "_claim_rows", broken)
    with pytest.raises(RuntimeError, match="断开"):
        gather_capitation(CTX, CapitationParams())
    assert segment_tables() == []
