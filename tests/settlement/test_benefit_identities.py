"""Identities of 应付统筹 on random data (SPEC §6.8): limits are never exceeded, and without modifiers
the fund is (in-scope − deductible consumed) × ratio, the deductible consumed adding up to min(D, Σ in-scope)."""
import random
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal as D

import pytest
from django.db.models import F

from settlement.benefits.selectors import derivations
from settlement.benefits.services import compute_expected
from tests import factories
from tests.settlement import benefit_builders as b
from tests.settlement.benefit_builders import YEAR, day

pytestmark = pytest.mark.django_db

TABLE = [
    ("居民", "门诊", "基层", "", "", "0", "80", "300"),
    ("居民", "门诊", "二级", "", "", "200", "60", "1500"),
    ("居民", "门诊", "三级", "", "", "500", "50", None),
    ("居民", "住院", "基层", "", "", "200", "90", "20000"),
    ("居民", "住院", "二级", "", "", "600", "70", "20000"),
    ("居民", "住院", "三级", "", "", "1000", "60", "20000"),
]


def test_random_year_keeps_limits_and_the_plain_formula():
    rng = random.Random(20251203)
    b.approved_table(TABLE)
    place = b.place()
    persons = [factories.person(place["wuxing"]) for _ in range(12)]
    for person in persons:
        for _ in range(rng.randint(1, 14)):
            level = rng.choice(["基层", "二级", "三级"])
            cents = rng.randint(1_000, 120_000)
            b.claim(person, place[level], day(rng.randint(1, 12), rng.randint(1, 28)), f"{D(cents) / 100:.2f}")
        for _ in range(rng.randint(0, 3)):
            level = rng.choice(["基层", "二级", "三级"])
            admitted = day(rng.randint(1, 12), rng.randint(1, 20))
            b.case(person, place[level], admitted, admitted, f"{D(rng.randint(50_000, 3_000_000)) / 100:.2f}")
    compute_expected(YEAR)
    figures = derivations(YEAR)
    assert len(figures) > 50 and all(f.rule_id for f in figures)

    pots = defaultdict(list)
    for f in figures:
        # no referral, no other county, no out-of-city care: the ratio is the rule's
        assert f.ratio == f.rule.ratio and f.referral_points == f.cross_county_points == f.out_of_city_points == 0
        # before the limit: (in-scope − deductible consumed) × ratio, half-up to 分
        plain = ((f.in_scope - f.deductible_used) * f.ratio / 100).quantize(D("0.01"), rounding=ROUND_HALF_UP)
        assert f.before_limit == plain
        assert 0 <= f.expected <= f.before_limit
        key = (f.person_id, f.care_type, f.rule_id if f.care_type == "门诊" else None)
        pots[key].append(f)
    for (person, care_type, _), rows in pots.items():
        total_expected = sum(f.expected for f in rows)
        total_before = sum(f.before_limit for f in rows)
        limit = rows[0].annual_limit
        if limit is None:
            assert total_expected == total_before
        else:
            # Σ expected over the person-year = min(limit, Σ before the limit): never above the limit
            assert total_expected == min(limit, total_before) <= limit
        if care_type == "门诊":
            # one deductible per person-year at a level: consumed in total min(D, Σ in-scope)
            assert sum(f.deductible_used for f in rows) == min(rows[0].deductible, sum(f.in_scope for f in rows))
        else:
            assert all(f.deductible_used == min(f.deductible, f.in_scope) for f in rows)


# The outpatient rows without deductible and limit: their claims take the computation's unsorted path.
FREE = [(*row[:5], "0", row[6], None) if row[1] == "门诊" else row for row in TABLE]


@pytest.mark.parametrize("table", [TABLE, FREE], ids=["running sums", "no deductible or limit"])
def test_stored_figures_are_exactly_the_differing_derivations(table):
    from settlement.benefits.models import UnmatchedFigure

    rng = random.Random(20251204)
    b.approved_table(table)
    place = b.place()
    for person in [factories.person(place["wuxing"]) for _ in range(6)]:
        for _ in range(rng.randint(1, 10)):
            level = rng.choice(["基层", "二级", "三级"])
            cents = rng.randint(1_000, 60_000)
            # reported at 60% of the in-scope cost: right only where 60% is the figure
            b.claim(person, place[level], day(rng.randint(1, 12), rng.randint(1, 28)), f"{D(cents) / 100:.2f}",
                    fund=f"{(D(cents) * D('0.6') / 100).quantize(D('0.01'), rounding=ROUND_HALF_UP)}")
    counts = compute_expected(YEAR)
    derived = {(d.claim_id, d.case_id): d for d in derivations(YEAR)}
    differs = {key: d.expected for key, d in derived.items() if d.expected is None or abs(d.difference) > D("0.01")}
    stored = {(u.claim_id, u.case_id): u.expected for u in UnmatchedFigure.objects.filter(year=YEAR)}
    assert stored == differs and counts["differing"] == len(differs) and 0 < len(differs) < len(derived)
    assert counts["claims"] == len(derived)
    for (claim_id, _), expected in stored.items():
        # stored: 统筹支付 − 应付统筹, as derived
        row = UnmatchedFigure.objects.get(claim_id=claim_id)
        assert row.difference == derived[(claim_id, None)].difference and row.expected == expected


# Neither outpatient nor inpatient rows with a limit: the stays' limit sums are skipped too.
NO_LIMITS = [(*row[:7], None) for row in FREE]


@pytest.mark.parametrize("ids", ["dense", "with gaps"])
@pytest.mark.parametrize("table", [TABLE, FREE, NO_LIMITS], ids=["running sums", "no deductible or limit", "no limits"])
def test_flagged_and_other_county_claims_stored_exactly_as_derived(table, ids):
    """The year's unsorted pass reads every claim as if it had no referral or relocation flag and the
    flagged ones again with theirs; the person's county comes from an array indexed by person id
    (built from the persons alone when their ids are dense, with a 0 per missing id otherwise). The
    stored figures must be exactly the differing derivations, which join the person and the flags."""
    from contracts.models import InsuredPerson
    from settlement.benefits.models import UnmatchedFigure

    rng = random.Random(20251207)
    b.approved_table(table, cross_county_points="5")
    place = b.place()
    persons = [factories.person(place[rng.choice(["wuxing", "nanxun"])]) for _ in range(10)]
    everyone = InsuredPerson.objects.order_by("id")
    if ids == "dense":
        # renumbered 1…n before anything refers to them
        for number, person in enumerate(everyone, start=1):
            InsuredPerson.objects.filter(pk=person.pk).update(id=-number)
        InsuredPerson.objects.update(id=-F("id"))
        assert list(InsuredPerson.objects.order_by("id").values_list("id", flat=True)) == list(range(1, everyone.count() + 1))
    else:
        InsuredPerson.objects.filter(pk=persons[3].pk).delete()
        persons.pop(3)
        assert everyone.last().id > everyone.count()
    persons = list(InsuredPerson.objects.filter(id_number__in=[p.id_number for p in persons]).order_by("id"))
    down, out, moved, revoked = persons[:4]
    b.referral(down, place["三级"], place["基层"], day(3, 1), "下转")
    b.referral(out, place["二级"], place["haikou_secondary"], day(5, 1), "转外")
    b.relocation(moved, day(2, 1), "460105")
    b.relocation(revoked, day(2, 1), "460105")
    b.relocation(revoked, day(6, 1), "460105")
    sites = ["基层", "二级", "三级", "nanxun_secondary", "haikou_secondary"]
    for person in persons:
        for _ in range(rng.randint(3, 9)):
            cents = rng.randint(1_000, 60_000)
            b.claim(person, place[rng.choice(sites)], day(rng.randint(1, 12), rng.randint(1, 28)),
                    f"{D(cents) / 100:.2f}",
                    fund=f"{(D(cents) * D('0.6') / 100).quantize(D('0.01'), rounding=ROUND_HALF_UP)}")
        b.claim(person, place["基层"], day(3, 2), "100.00")  # within 下转's window for `down`
        b.claim(person, place["haikou_secondary"], day(5, 3), "100.00")  # within 转外's 90 days for `out`
        for _ in range(rng.randint(0, 3)):
            admitted = day(rng.randint(1, 12), rng.randint(1, 20))
            cents = rng.randint(50_000, 3_000_000)
            b.case(person, place[rng.choice(sites)], admitted, admitted, f"{D(cents) / 100:.2f}",
                   fund=f"{(D(cents) * D('0.6') / 100).quantize(D('0.01'), rounding=ROUND_HALF_UP)}")
    counts = compute_expected(YEAR)
    every = derivations(YEAR)
    # the stays: the differing ones stored, the limit reached by someone where the table has one
    stays = {d.case_id: (d.expected, d.difference) for d in every if d.case_id}
    assert {u.case_id: (u.expected, u.difference) for u in UnmatchedFigure.objects.filter(year=YEAR, case__isnull=False)} \
        == {key: v for key, v in stays.items() if v[0] is None or abs(v[1]) > D("0.01")}
    assert any(d.limit_left == 0 for d in every if d.case_id) == any(row[7] for row in table if row[1] == "住院")
    derived = {d.claim_id: d for d in every if d.claim_id}
    # every kind of flag and modifier is among the claims
    assert any(d.referral_points for d in derived.values()) and any(d.cross_county_points for d in derived.values())
    assert any(d.out_of_city_points for d in derived.values()) and any(d.relocation for d in derived.values())
    assert any(d.out_of_city_points == 0 and d.relocation == "" and d.cross_county_points == 0
               for d in derived.values() if d.institution_id == place["haikou_secondary"].id)
    differs = {key: (d.expected, d.difference) for key, d in derived.items()
               if d.expected is None or abs(d.difference) > D("0.01")}
    stored = {u.claim_id: (u.expected, u.difference) for u in UnmatchedFigure.objects.filter(year=YEAR, claim__isnull=False)}
    assert stored == differs and 0 < len(differs) < len(derived)
    assert counts["claims"] == len(derived)
