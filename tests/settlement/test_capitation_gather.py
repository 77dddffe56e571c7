"""Capitation gather on the database: heads, the month rule, transfers, age bands, registrations,
standards and the claims behind A (SPEC §6.1). Figures are worked by hand in the comments."""
import datetime
from decimal import Decimal

import pytest

from alliances.models import Membership
from contracts.models import DiseaseRegistration
from settlement.engine.base import RunContext
from settlement.engine.schemes.capitation import (
    CapitationParams, SettlementInputError, claims_queryset, compute_capitation, gather_capitation,
    resolve_standards,
)
from tests import factories
from tests.settlement.engine_data import claim, d, standard, standards_2025

D = Decimal
CTX = RunContext("capitation", 2025)
PARAMS = CapitationParams()
YOUNG = datetime.date(1970, 5, 17)


@pytest.fixture
def world(db):
    county = factories.region()
    inst = factories.institution(county=county)
    alliance = factories.alliance(lead=inst)
    standards_2025()
    return county, inst, alliance


def pm_of(inputs):
    return sum(c.person_months for c in inputs.classes)


def test_month_rule_at_month_ends(world):
    county, inst, alliance = world
    v = d("2024-12-01")
    # from the 31st of January: Jan–Dec = 12
    factories.contract(factories.person(county, YOUNG), inst, d("2025-01-31"), verified_on=d("2025-02-01"))
    # from 31 March: counts from March = 10
    factories.contract(factories.person(county, YOUNG), inst, d("2025-03-31"), verified_on=d("2025-04-01"))
    # ends on the last day of June: Jan–Jun = 6
    factories.contract(factories.person(county, YOUNG), inst, d("2024-06-01"), d("2025-06-30"), verified_on=v)
    # ends the day before the last day of June: Jan–May = 5
    factories.contract(factories.person(county, YOUNG), inst, d("2024-06-01"), d("2025-06-29"), verified_on=v)
    # ends 30 January: not in force on 31 January → no month, not a head
    factories.contract(factories.person(county, YOUNG), inst, d("2024-06-01"), d("2025-01-30"), verified_on=v)
    # never verified: not a head
    factories.contract(factories.person(county, YOUNG), inst, d("2025-01-01"))

    unit = gather_capitation(CTX, PARAMS)[alliance.code]
    assert unit.heads == 4
    assert pm_of(unit) == 12 + 10 + 6 + 5
    # Q = 33 person-months × 1,200.00 / 12 = 3,300.00
    assert compute_capitation(unit, PARAMS, D("0")).quota == D("3300.00")


def test_transfers_between_alliances_mid_year(world):
    county, inst_a, alliance_a = world
    inst_b = factories.institution(county=county)
    alliance_b = factories.alliance(lead=inst_b)
    moving = factories.institution(county=county)
    # The institution leaves A on 15 June (not a member on 30 June) and joins B on 16 June.
    Membership.objects.create(alliance=alliance_a, institution=moving, joined_on=d("2020-01-01"), left_on=d("2025-06-15"))
    Membership.objects.create(alliance=alliance_b, institution=moving, joined_on=d("2025-06-16"))
    p1 = factories.person(county, YOUNG)
    factories.contract(p1, moving, d("2024-01-01"), verified_on=d("2024-01-02"))
    # A person moving: with A's lead until 30 April (Jan–Apr), with B's lead from 1 May (May–Dec).
    p2 = factories.person(county, YOUNG)
    factories.contract(p2, inst_a, d("2024-01-01"), d("2025-04-30"), verified_on=d("2024-01-02"))
    factories.contract(p2, inst_b, d("2025-05-01"), verified_on=d("2025-05-02"))

    claim(p1, moving, d("2025-03-10"), "30.00")   # A, inside (moving is A's member on 31 March)
    claim(p1, moving, d("2025-08-10"), "40.00")   # B, inside
    claim(p1, inst_a, d("2025-08-11"), "50.00")   # B, outside (A's hospital)
    claim(p2, inst_a, d("2025-04-30"), "60.00")   # A, inside
    claim(p2, inst_a, d("2025-05-01"), "70.00")   # B, outside
    claim(p2, inst_b, d("2025-12-31"), "80.00")   # B, inside

    units = gather_capitation(CTX, PARAMS)
    a, b = units[alliance_a.code], units[alliance_b.code]
    # A: p1 Jan–May (5) + p2 Jan–Apr (4) = 9; B: p1 Jun–Dec (7) + p2 May–Dec (8) = 15 — 24 = 2 × 12
    assert (pm_of(a), pm_of(b)) == (9, 15)
    assert (a.actual_inside, a.actual_outside) == (D("90.00"), D("0.00"))   # 30 + 60
    assert (b.actual_inside, b.actual_outside) == (D("120.00"), D("120.00"))  # 40 + 80 | 50 + 70
    assert (b.claims_inside, b.claims_outside) == (2, 2)


def test_age_band_on_first_january(world):
    county, inst, alliance = world
    v = d("2024-12-01")
    # turns 61 on 1 January 2025: 61 full years on 1 January → 60周岁以上 (2,400.00)
    factories.contract(factories.person(county, d("1964-01-01")), inst, d("2024-01-01"), verified_on=v)
    # turns 61 on 2 January 2025: 60 on 1 January → 60周岁及以下 (1,200.00)
    factories.contract(factories.person(county, d("1964-01-02")), inst, d("2024-01-01"), verified_on=v)
    unit = gather_capitation(CTX, PARAMS)[alliance.code]
    bands = {c.age_band: c.person_months for c in unit.classes}
    assert bands == {"60周岁以上": 12, "60周岁及以下": 12}
    # Q = 12 × 2,400 / 12 + 12 × 1,200 / 12 = 3,600.00
    assert compute_capitation(unit, PARAMS, D("0")).quota == D("3600.00")


def test_registrations_count_from_their_filing_month(world):
    county, inst, alliance = world
    chronic = factories.disease(name="高血压")
    unlisted = factories.disease(name="无标准病")
    standard(2025, "居民", "60周岁及以下", "600.00", disease=chronic)
    p = factories.person(county, YOUNG)
    factories.contract(p, inst, d("2024-01-01"), verified_on=d("2024-01-02"))
    # filed 15 April, ended 30 October (before the 31st): April–September = 6 months
    DiseaseRegistration.objects.create(person=p, disease=chronic, filed_on=d("2025-04-15"), ended_on=d("2025-10-30"))
    # filed 30 November: counts November–December = 2 months, but has no standard
    DiseaseRegistration.objects.create(person=p, disease=unlisted, filed_on=d("2025-11-30"))
    claim(p, inst, d("2025-05-05"), "25.00", visit_type="慢病门诊", disease=chronic)
    claim(p, inst, d("2025-05-06"), "99.00", visit_type="特病门诊")  # not a counted visit type

    unit = gather_capitation(CTX, PARAMS)[alliance.code]
    months = {x.disease_name: x.person_months for x in unit.diseases}
    assert months == {"高血压": 6, "无标准病": 2}
    out = compute_capitation(unit, PARAMS, D("0"))
    # Q = 12 × 1,200 / 12 + 6 × 600 / 12 = 1,200 + 300 = 1,500.00; A = 25.00
    assert out.quota == D("1500.00")
    assert out.actual == D("25.00")
    assert len(out.warnings) == 1 and "无标准病" in out.warnings[0]


def test_highest_only_attributes_each_month_to_the_highest_standard(world):
    county, inst, alliance = world
    low, high = factories.disease(name="低"), factories.disease(name="高")
    standard(2025, "居民", "60周岁及以下", "600.00", disease=low)
    standard(2025, "居民", "60周岁及以下", "2400.00", disease=high)
    p = factories.person(county, YOUNG)
    factories.contract(p, inst, d("2024-01-01"), verified_on=d("2024-01-02"))
    DiseaseRegistration.objects.create(person=p, disease=low, filed_on=d("2024-01-01"))
    DiseaseRegistration.objects.create(person=p, disease=high, filed_on=d("2025-07-01"))  # July–December
    params = CapitationParams(disease_add_mode="highest_only")
    unit = gather_capitation(CTX, params)[alliance.code]
    counted = {x.disease_name: x.highest_person_months for x in unit.diseases}
    assert counted == {"低": 6, "高": 6}
    # highest_only: 1,200 + 6 × 600 / 12 + 6 × 2,400 / 12 = 1,200 + 300 + 1,200 = 2,700.00
    assert compute_capitation(unit, params, D("0")).quota == D("2700.00")
    # add_all: 1,200 + 12 × 600 / 12 + 6 × 2,400 / 12 = 1,200 + 600 + 1,200 = 3,000.00
    assert compute_capitation(unit, PARAMS, D("0")).quota == D("3000.00")


def test_standards_need_approval_and_validity(db):
    standard(2023, "居民", "60周岁及以下", "900.00")                    # valid 2023–2024 only
    standard(2024, "居民", "60周岁以上", "2000.00")                     # valid 2024–2025
    standard(2025, "居民", "60周岁以上", "2600.00", approved=False)     # a draft is never used
    standard(2022, "职工", "60周岁以上", "1500.00", valid_years=5)      # valid 2022–2026
    standard(2024, "职工", "60周岁以上", "1700.00")                     # later year wins
    chosen = resolve_standards(2025)
    assert ("居民", "60周岁及以下", None) not in chosen
    assert chosen[("居民", "60周岁以上", None)] == D("2000.00")
    assert chosen[("职工", "60周岁以上", None)] == D("1700.00")


def test_missing_base_standard_stops_the_gather(db):
    county = factories.region()
    inst = factories.institution(county=county)
    factories.alliance(lead=inst)
    factories.contract(factories.person(county, YOUNG), inst, d("2024-01-01"), verified_on=d("2024-01-02"))
    with pytest.raises(SettlementInputError, match="缺少已审批的普通门诊人头标准"):
        gather_capitation(CTX, PARAMS)


def test_region_restricts_the_alliances(world):
    county, inst, alliance = world
    other = factories.region("330503", "南浔区")
    other_inst = factories.institution(county=other)
    other_alliance = factories.alliance(lead=other_inst)
    factories.contract(factories.person(county, YOUNG), inst, d("2024-01-01"), verified_on=d("2024-01-02"))
    factories.contract(factories.person(other, YOUNG), other_inst, d("2024-01-01"), verified_on=d("2024-01-02"))
    assert set(gather_capitation(CTX, PARAMS)) == {alliance.code, other_alliance.code}
    assert set(gather_capitation(RunContext("capitation", 2025, "330503"), PARAMS)) == {other_alliance.code}


def test_claims_queryset_is_exactly_the_claims_behind_a(world):
    county, inst, alliance = world
    p = factories.person(county, YOUNG)
    factories.contract(p, inst, d("2025-03-31"), verified_on=d("2025-04-01"))
    counted = claim(p, inst, d("2025-03-01"), "10.00")
    claim(p, inst, d("2025-02-28"), "20.00")  # before the contract's first counted month
    claim(p, inst, d("2024-12-31"), "30.00")  # another year
    assert list(claims_queryset(CTX, PARAMS, alliance.code).values_list("pk", flat=True)) == [counted.pk]
    assert gather_capitation(CTX, PARAMS)[alliance.code].actual_inside == D("10.00")


def test_gather_is_set_based_a_fixed_number_of_queries(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    county, inst, alliance = world
    chronic = factories.disease()
    standard(2025, "居民", "60周岁及以下", "600.00", disease=chronic)

    def add_heads(n):
        for index in range(n):
            p = factories.person(county, YOUNG)
            factories.contract(p, inst, d("2024-01-01"), verified_on=d("2024-01-02"))
            DiseaseRegistration.objects.create(person=p, disease=chronic, filed_on=d("2024-06-01"))
            claim(p, inst, datetime.date(2025, index % 12 + 1, 1), "1.00")

    def queries():
        with CaptureQueriesContext(connection) as captured:
            unit = gather_capitation(CTX, PARAMS)[alliance.code]
        return len(captured), unit

    add_heads(1)
    few, _ = queries()
    add_heads(11)
    many, unit = queries()
    # the same statements whatever the number of heads, registrations and claims
    assert few == many <= 20
    assert unit.heads == 12 and unit.actual_inside == D("12.00")


def test_membership_that_ended_years_before_counts_no_month_and_does_not_break_the_gather(world):
    county, inst, alliance = world
    # The institution belonged to an older alliance until mid-2023: that row lies wholly before 2025
    # and once made the month arithmetic overflow ("date field value out of range").
    old = factories.alliance(lead=factories.institution(county=county), joined=d("2020-01-01"))
    Membership.objects.create(alliance=old, institution=inst, joined_on=d("2021-01-01"), left_on=d("2023-06-30"))
    Membership.objects.filter(alliance=alliance, institution=inst).update(joined_on=d("2023-07-01"))
    factories.contract(factories.person(county, YOUNG), inst, d("2024-01-01"), verified_on=d("2024-01-02"))

    units = gather_capitation(CTX, PARAMS)
    # The head counts all 12 months for the current alliance and none for the old one.
    assert pm_of(units[alliance.code]) == 12
    assert old.code not in units or pm_of(units[old.code]) == 0
