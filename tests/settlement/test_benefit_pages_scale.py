"""Issue #13: the 核对, 转诊记录 and 异地安置备案 changelists at city scale — never counted, no DISTINCT,
a query count that does not grow with the rows, the scope of every role, and 按机构汇总 from the sums
stored with the figures equal to the figures worked out by hand."""
import re
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from settlement.benefits import selectors
from settlement.benefits.models import BenefitFigure, Outcome, UnmatchedTotal
from settlement.benefits.services import compute_expected
from tests import factories
from tests.settlement import benefit_builders as b
from tests.settlement.benefit_builders import YEAR, day

pytestmark = pytest.mark.django_db

RECONCILE = "admin:settlement_benefitfigure_changelist"
REFERRALS = "admin:settlement_referral_changelist"
RELOCATIONS = "admin:settlement_relocation_changelist"
BIG = ("settlement_benefitfigure", "settlement_referral", "settlement_relocation")


@pytest.fixture
def computed():
    place = b.place()
    b.approved_table()
    person = place["resident"]
    # (1,200 − 200) × 60% = 600.00, reported 650.00: +50.00 (二级)
    b.claim(person, place["二级"], day(1, 6), "1200.00", fund="650.00", serial="MZ-OVER")
    # (10,000 − 1,000) × 60% = 5,400.00, reported 5,000.00: −400.00 (三级)
    b.case(person, place["三级"], day(2, 1), day(2, 9), "10000.00", fund="5000.00", serial="ZY-UNDER")
    # 200 × 80% = 160.00, reported right (基层): stored nowhere, in no total
    b.claim(person, place["基层"], day(1, 5), "200.00", fund="160.00", serial="MZ-RIGHT")
    compute_expected(YEAR)
    return place


def _page(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response, [q["sql"] for q in queries.captured_queries]


def _no_count_no_distinct(sqls):
    for sql in sqls:
        if any(f'"{table}"' in sql for table in BIG):
            assert not re.search(r"COUNT\(\*\)|DISTINCT", sql), sql


def _totals(response):
    return {row["institution__code"]: (row["rows"], row["fund_paid"], row["expected"], row["difference"])
            for row in response.context_data["institution_totals"]}


def test_reconcile_totals_per_institution_are_the_hand_worked_figures(client, make_user, computed):
    place = computed
    client.force_login(make_user("city"))
    response, _ = _page(client, reverse(RECONCILE) + f"?year={YEAR}")
    assert _totals(response) == {
        place["二级"].code: (1, D("650.00"), D("600.00"), D("50.00")),
        place["三级"].code: (1, D("5000.00"), D("5400.00"), D("-400.00")),
    }
    # a filter the sums hold (三级 only), and a search they do not (summed from the rows): the same figures
    by_level, _ = _page(client, reverse(RECONCILE) + "?level__exact=三级")
    assert _totals(by_level) == {place["三级"].code: (1, D("5000.00"), D("5400.00"), D("-400.00"))}
    searched, _ = _page(client, reverse(RECONCILE) + "?q=MZ-OVER")
    assert _totals(searched) == {place["二级"].code: (1, D("650.00"), D("600.00"), D("50.00"))}
    # nothing 无适用规则 here: that filter sums nothing
    unruled, _ = _page(client, reverse(RECONCILE) + "?differs=unruled")
    assert _totals(unruled) == {}


def test_stored_sums_equal_the_rows_summed_for_every_filter_they_hold(computed):
    place = computed
    figures = BenefitFigure.objects.all()
    for params, rows in [
        ({}, figures.filter(selectors.DIFFERS)),
        ({"differs": "all"}, figures),
        ({"year": str(YEAR), "care_type__exact": "住院"}, figures.filter(selectors.DIFFERS, year=YEAR, care_type="住院")),
        ({"visit_type": "普通门诊"}, figures.filter(selectors.DIFFERS, visit_type="普通门诊")),
        ({"institution__county__id__exact": str(place["wuxing"].pk)}, figures.filter(selectors.DIFFERS, institution__county=place["wuxing"])),
        ({"year": str(YEAR - 1)}, figures.filter(year=YEAR - 1)),
    ]:
        assert selectors.stored_totals(params, None) == selectors.totals_by_institution(rows), params
    assert selectors.stored_totals({"q": "MZ-OVER"}, None) is None  # a search: summed from the rows


def test_recomputing_replaces_the_sums(computed):
    compute_expected(YEAR)
    assert UnmatchedTotal.objects.filter(year=YEAR).count() == 2
    assert sorted(UnmatchedTotal.objects.values_list("rows", "difference")) == [(1, D("-400.00")), (1, D("50.00"))]
    assert set(UnmatchedTotal.objects.values_list("outcome", flat=True)) == {Outcome.DIFFERS}


def _more_differing_claims(place, n):
    person = place["resident"]
    for i in range(n):  # each (1,000 − 0) × 60% = 600.00 after MZ-OVER used the deductible, reported 700.00
        b.claim(person, place["二级"], day(3, 1 + i), "1000.00", fund="700.00", serial=f"MZ-MORE{i}")
    compute_expected(YEAR)


def test_reconcile_query_count_does_not_grow_with_the_rows(client, make_user, computed):
    place = computed
    client.force_login(make_user("city"))
    url = reverse(RECONCILE) + f"?year={YEAR}"
    client.get(url)
    _, few = _page(client, url)
    _more_differing_claims(place, 6)
    response, many = _page(client, url)
    assert len(many) == len(few)
    _no_count_no_distinct(few + many)
    assert "MZ-MORE5" in response.content.decode()
    # the totals follow: 二级 1 + 6 rows, Σ difference 50.00 + 6 × 100.00
    assert _totals(response)[place["二级"].code] == (7, D("4850.00"), D("4200.00"), D("650.00"))
    assert "第 1 页" in response.content.decode()  # a big-table page: no total count
    _, everything = _page(client, reverse(RECONCILE) + "?differs=all")
    _no_count_no_distinct(everything)


def test_reconcile_scope_per_role(client, make_user, computed):
    place = computed
    nanxun_person = factories.person(place["nanxun"])
    b.claim(nanxun_person, place["nanxun_secondary"], day(4, 1), "1200.00", fund="900.00", serial="MZ-NANXUN")
    compute_expected(YEAR)
    seen = {}
    for role, code in [("city", None), ("auditor", None), ("county", "330502"), ("county", "330503"),
                       ("hospital", place["二级"].code)]:
        client.force_login(make_user(role, code))
        page = client.get(reverse(RECONCILE)).content.decode()
        seen[(role, code)] = {s for s in ("MZ-OVER", "ZY-UNDER", "MZ-NANXUN") if s in page}
    assert seen[("city", None)] == seen[("auditor", None)] == {"MZ-OVER", "ZY-UNDER", "MZ-NANXUN"}
    assert seen[("county", "330502")] == {"MZ-OVER", "ZY-UNDER"}
    assert seen[("county", "330503")] == {"MZ-NANXUN"}
    assert seen[("hospital", place["二级"].code)] == {"MZ-OVER"}
    # and the hospital's totals are its own only
    response, _ = _page(client, reverse(RECONCILE))
    assert set(_totals(response)) == {place["二级"].code}


def test_reconcile_bad_filter_values_are_refused_in_chinese(client, make_user, computed):
    client.force_login(make_user("city"))
    for bad in ("year=20x5", "visit_type=不存在"):
        response = client.get(reverse(RECONCILE) + f"?{bad}")
        assert response.status_code in (200, 302)
        assert "MZ-OVER" not in response.content.decode()


@pytest.fixture
def referrals():
    place = b.place()
    here, there = place["二级"], place["nanxun_secondary"]
    nanxun_person = factories.person(place["nanxun"])
    rows = {
        "sent": b.referral(place["resident"], here, place["三级"], day(1, 2), "上转"),
        "received": b.referral(nanxun_person, there, here, day(1, 3), "上转"),
        # a 吴兴 resident referred between two 南浔 institutions: 吴兴 sees it by the person
        "person": b.referral(place["resident"], there, there, day(1, 4), "下转"),
        "elsewhere": b.referral(nanxun_person, there, place["haikou_secondary"], day(1, 5), "转外"),
    }
    return place, rows


def test_referral_scope_per_role(client, make_user, referrals):
    place, rows = referrals
    seen = {}
    for role, code in [("city", None), ("county", "330502"), ("county", "330503"), ("hospital", place["二级"].code),
                       ("hospital", place["haikou_secondary"].code)]:
        client.force_login(make_user(role, code))
        page = client.get(reverse(REFERRALS)).content.decode()
        seen[(role, code)] = {name for name, row in rows.items() if row.number in page}
    assert seen[("city", None)] == {"sent", "received", "person", "elsewhere"}
    assert seen[("county", "330502")] == {"sent", "received", "person"}
    assert seen[("county", "330503")] == {"received", "person", "elsewhere"}
    assert seen[("hospital", place["二级"].code)] == {"sent", "received"}
    assert seen[("hospital", place["haikou_secondary"].code)] == {"elsewhere"}


def test_referral_search_by_institution_finds_sent_and_received(client, make_user, referrals):
    place, rows = referrals
    client.force_login(make_user("county", "330502"))
    page = client.get(reverse(REFERRALS) + f"?q={place['二级'].code}").content.decode()
    assert rows["sent"].number in page and rows["received"].number in page and rows["person"].number not in page
    page = client.get(reverse(REFERRALS) + f"?q={rows['person'].number}").content.decode()
    assert rows["person"].number in page and rows["sent"].number not in page


def test_referral_and_relocation_pages_query_count_does_not_grow(client, make_user, referrals):
    place, _ = referrals
    client.force_login(make_user("county", "330502"))
    for name in (REFERRALS, RELOCATIONS):
        client.get(reverse(name))
    _, referral_few = _page(client, reverse(REFERRALS))
    b.relocation(place["resident"], day(1, 10), "460100")
    _, relocation_few = _page(client, reverse(RELOCATIONS))
    for i in range(5):
        person = factories.person(place["wuxing"])
        b.referral(person, place["二级"], place["三级"], day(2, 1 + i), "上转")
        b.relocation(person, day(2, 1 + i), "460100")
        b.relocation(person, day(6, 1 + i), "460100")  # two filings: the year is revoked
    response, referral_many = _page(client, reverse(REFERRALS))
    assert len(referral_many) == len(referral_few)
    response, relocation_many = _page(client, reverse(RELOCATIONS))
    assert len(relocation_many) == len(relocation_few)
    assert response.content.decode().count(f"已取消（{YEAR}年备案2次）") == 10
    _no_count_no_distinct(referral_few + referral_many + relocation_few + relocation_many)


def test_relocation_scope_per_role(client, make_user, referrals):
    place, _ = referrals
    mine = b.relocation(place["resident"], day(1, 10), "460100")
    theirs = b.relocation(factories.person(place["nanxun"]), day(1, 11), "460100")
    for code, expected in (("330502", mine), ("330503", theirs)):
        client.force_login(make_user("county", code))
        page = client.get(reverse(RELOCATIONS)).content.decode()
        other = theirs if expected is mine else mine
        assert str(expected.person) in page and str(other.person) not in page
