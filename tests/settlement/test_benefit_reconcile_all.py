"""Issue #13: the 核对 page under 全部 — every claim and case of a computed year listed exactly once, with
its 核对结果, newest record first (view id: 2 × claim id, 2 × case id + 1), read page by page through the
三 branches of the view merged (never the union sorted whole); the same rows by 下一页 and by a typed page
number; scope per role; 差额 sorting left to 不一致; a 一致 row's own page reached by its claim's key."""
import io
import re
from decimal import Decimal as D

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook

from contracts.models import InsuranceType
from settlement.benefits import admin as benefits_admin
from settlement.benefits.admin import AllFiguresPaginator
from settlement.benefits.models import BenefitFigure, UnmatchedFigure
from settlement.benefits.services import compute_expected
from tests import factories
from tests.settlement import benefit_builders as b
from tests.settlement.benefit_builders import YEAR, day

pytestmark = pytest.mark.django_db

RECONCILE = "admin:settlement_benefitfigure_changelist"
MATCHES, DIFFERS, UNRULED = "一致", "不一致", "无适用规则"


@pytest.fixture
def year():
    place = b.place()
    b.approved_table()
    resident = place["resident"]
    worker = factories.person(place["wuxing"], insurance_type=InsuranceType.EMPLOYEE)
    nanxun = factories.person(place["nanxun"])
    rows = {
        # 200 × 80% = 160.00 (基层 outpatient: no deductible), reported right
        "MZ-R1": (b.claim(resident, place["基层"], day(1, 5), "200.00", fund="160.00", serial="MZ-R1"), MATCHES),
        # (1,200 − 200) × 60% = 600.00, reported 650.00
        "MZ-OVER": (b.claim(resident, place["二级"], day(1, 6), "1200.00", fund="650.00", serial="MZ-OVER"), DIFFERS),
        # the 二级 deductible is used up: 100 × 60% = 60.00, reported right
        "MZ-R2": (b.claim(resident, place["二级"], day(1, 7), "100.00", fund="60.00", serial="MZ-R2"), MATCHES),
        # (10,000 − 1,000) × 60% = 5,400.00, reported 5,000.00
        "ZY-UNDER": (b.case(resident, place["三级"], day(2, 1), day(2, 9), "10000.00", fund="5000.00",
                            serial="ZY-UNDER"), DIFFERS),
        # (2,000 − 600) × 70% = 980.00, reported right
        "ZY-R": (b.case(resident, place["二级"], day(3, 1), day(3, 5), "2000.00", fund="980.00", serial="ZY-R"), MATCHES),
        # 职工 has no 三级 outpatient rule
        "MZ-UNRULED": (b.claim(worker, place["三级"], day(4, 1), "300.00", fund="100.00", serial="MZ-UNRULED"), UNRULED),
        # another county: (1,200 − 200) × 60% = 600.00, reported right
        "MZ-NANXUN": (b.claim(nanxun, place["nanxun_secondary"], day(5, 1), "1200.00", fund="600.00",
                              serial="MZ-NANXUN"), MATCHES),
    }
    # a year never computed, and not listed
    b.claim(resident, place["基层"], day(1, 5).replace(year=YEAR - 1), "200.00", fund="160.00", serial="MZ-LASTYEAR")
    compute_expected(YEAR)
    # uploaded after the computation: not listed until the year is computed again
    b.claim(resident, place["基层"], day(6, 1), "200.00", fund="1.00", serial="MZ-LATE")
    return place, rows, worker


def _view_id(row):
    # the view's id (settlement/migrations/0019): 2 × claim id, 2 × case id + 1
    return 2 * row.pk + (1 if row.serial.startswith("ZY") else 0)


def _newest_first(rows, serials):
    return sorted(serials, key=lambda serial: -_view_id(rows[serial][0]))


@pytest.fixture
def two_a_page(monkeypatch):
    monkeypatch.setattr(admin.site._registry[BenefitFigure], "list_per_page", 2)


def _listed(response):
    return [(f.serial, f.outcome) for f in response.context_data["cl"].result_list]


def _walk_by_link(client, url):
    """Every page of the list, each reached by the 下一页 link of the one before; the queries of each."""
    seen, counts = [], []
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        seen += _listed(response)
        counts.append(len(queries))
        for sql in (q["sql"] for q in queries.captured_queries):
            assert not re.search(r"COUNT\(\*\)|DISTINCT", sql), sql
        link = re.search(r'<a href="([^"]+)">下一页</a>', response.content.decode())
        url = reverse(RECONCILE) + link.group(1).replace("&amp;", "&") if link else None
    return seen, counts


def test_all_lists_every_claim_and_case_of_the_year_once_newest_first(client, make_user, year, two_a_page):
    place, rows, _ = year
    client.force_login(make_user("city"))
    expected = [(serial, rows[serial][1]) for serial in _newest_first(rows, rows)]
    by_link, counts = _walk_by_link(client, reverse(RECONCILE) + "?differs=all")
    assert by_link == expected
    assert len(counts) == 4 and len(set(counts[1:])) == 1  # 7 rows, 2 a page; pages after the first alike
    # a typed page number reads the same rows (by its offset)
    by_number = []
    for number in (1, 2, 3, 4):
        by_number += _listed(client.get(reverse(RECONCILE) + f"?differs=all&p={number}"))
    assert by_number == expected
    # the stored rows are the two differing ones and the unruled one only: the others are the view's
    assert sorted(UnmatchedFigure.objects.values_list("serial", flat=True)) == ["MZ-OVER", "MZ-UNRULED", "ZY-UNDER"]


@pytest.mark.parametrize("few", [0, 60], ids=["walked", "by institution"])
@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_pages_read_the_claims_chunk_by_chunk_to_the_same_rows(client, make_user, year, two_a_page, monkeypatch,
                                                               chunk, few):
    # Walked in key order through every institution, or merged from each institution's own claims (the
    # test city's few institutions are all "few" unless the threshold says none is).
    place, rows, _ = year
    monkeypatch.setattr(AllFiguresPaginator, "CHUNK", chunk)
    monkeypatch.setattr(benefits_admin, "FEW_INSTITUTIONS", few)
    for user, serials in ((make_user("city"), set(rows)),
                          (make_user("hospital", place["二级"].code), {"MZ-OVER", "MZ-R2", "ZY-R"})):
        client.force_login(user)
        expected = [(serial, rows[serial][1]) for serial in _newest_first(rows, serials)]
        by_number = []
        for number in range(1, (len(expected) + 1) // 2 + 1):  # two a page
            by_number += _listed(client.get(reverse(RECONCILE) + f"?differs=all&p={number}"))
        assert by_number == expected
        by_link, _ = _walk_by_link(client, reverse(RECONCILE) + "?differs=all")
        assert by_link == expected
        # a level's institutions
        level = [row for row in expected if row[0] in {"MZ-OVER", "MZ-R2", "ZY-R", "MZ-NANXUN"}]
        assert _listed(client.get(reverse(RECONCILE) + "?differs=all&level__exact=二级")) == level[:2]


def test_all_under_each_filter_and_search(client, make_user, year):
    place, rows, worker = year
    client.force_login(make_user("city"))

    def listed(query):
        return _listed(client.get(reverse(RECONCILE) + "?differs=all&" + query))

    def of(*serials):
        return [(serial, rows[serial][1]) for serial in _newest_first(rows, serials)]

    assert listed("care_type__exact=住院") == of("ZY-UNDER", "ZY-R")
    assert listed("level__exact=二级") == of("MZ-OVER", "MZ-R2", "ZY-R", "MZ-NANXUN")
    assert listed(f"institution__county__id__exact={place['nanxun'].pk}") == of("MZ-NANXUN")
    assert listed(f"year={YEAR}&visit_type=普通门诊") == of("MZ-R1", "MZ-OVER", "MZ-R2", "MZ-UNRULED", "MZ-NANXUN")
    assert listed(f"year={YEAR - 1}") == []
    assert listed("q=MZ-R2") == of("MZ-R2")
    assert listed("q=ZY-R") == of("ZY-R")
    assert listed(f"q={worker.id_number}") == of("MZ-UNRULED")
    assert listed(f"q={place['二级'].code}") == of("MZ-OVER", "MZ-R2", "ZY-R")
    # 差额 sorts 不一致 only: under 全部 a sort asked for is not applied, and no column offers one
    response = client.get(reverse(RECONCILE) + "?differs=all&o=10")
    assert _listed(response) == of(*rows)
    assert not response.context_data["cl"].sortable_by
    # 不一致 still sorts by 差额 (−400.00, +50.00, and the unruled claim's whole 100.00)
    assert _listed(client.get(reverse(RECONCILE) + "?o=10")) == [
        ("ZY-UNDER", DIFFERS), ("MZ-OVER", DIFFERS), ("MZ-UNRULED", UNRULED)]


def test_all_scope_per_role(client, make_user, year):
    place, rows, _ = year
    seen = {}
    for role, code in [("city", None), ("auditor", None), ("county", "330502"), ("county", "330503"),
                       ("hospital", place["二级"].code), ("hospital", place["haikou_secondary"].code)]:
        client.force_login(make_user(role, code))
        seen[(role, code)] = {serial for serial, _ in _listed(client.get(reverse(RECONCILE) + "?differs=all"))}
    everything = set(rows)
    assert seen[("city", None)] == seen[("auditor", None)] == everything
    assert seen[("county", "330502")] == everything - {"MZ-NANXUN"}
    assert seen[("county", "330503")] == {"MZ-NANXUN"}
    assert seen[("hospital", place["二级"].code)] == {"MZ-OVER", "MZ-R2", "ZY-R"}
    assert seen[("hospital", place["haikou_secondary"].code)] == set()
    # another county's institution code: no rows at once (the search answers nothing), not an error
    client.force_login(make_user("county", "330503"))
    response = client.get(reverse(RECONCILE) + f"?differs=all&q={place['二级'].code}")
    assert response.status_code == 200 and _listed(response) == []


def test_a_matching_row_has_its_own_page_in_scope_only(client, make_user, year):
    place, rows, _ = year
    matching, case = rows["MZ-R2"][0], rows["ZY-R"][0]
    client.force_login(make_user("county", "330502"))
    page = client.get(reverse("admin:settlement_benefitfigure_change", args=[2 * matching.pk]))
    assert page.status_code == 200
    # 100.00 × 60% (the 二级 deductible used by MZ-OVER): 60.00, reported 60.00
    assert "应付统筹：60.00元；上报统筹支付：60.00元；差额：0.00元" in page.content.decode()
    page = client.get(reverse("admin:settlement_benefitfigure_change", args=[2 * case.pk + 1]))
    assert page.status_code == 200 and "ZY-R" in page.content.decode()
    # no such case; another county's row is not reachable
    assert client.get(reverse("admin:settlement_benefitfigure_change", args=[2 * (case.pk + 10_000) + 1])).status_code == 404
    client.force_login(make_user("county", "330503"))
    assert client.get(reverse("admin:settlement_benefitfigure_change", args=[2 * matching.pk])).status_code == 404


def test_all_filters_on_an_institution_read_the_users_institutions_first(client, make_user, year):
    place, rows, _ = year

    def listed(query):
        return _listed(client.get(reverse(RECONCILE) + "?differs=all&" + query))

    def of(*serials):
        return [(serial, rows[serial][1]) for serial in _newest_first(rows, serials)]

    # a hospital: its own county lists its rows; another county lists nothing without reading a claim or
    # a case; nor does a level none of its institutions has (its matching branches carry a false constant)
    client.force_login(make_user("hospital", place["二级"].code))
    assert listed(f"institution__county__id__exact={place['wuxing'].pk}") == of("MZ-OVER", "MZ-R2", "ZY-R")
    with CaptureQueriesContext(connection) as queries:
        assert listed(f"institution__county__id__exact={place['nanxun'].pk}") == []
    read = " ".join(q["sql"] for q in queries.captured_queries)
    assert "benefitmatchingclaim" not in read and "benefitmatchingcase" not in read
    assert listed("level__exact=三级") == []
    # the city itself has no institution of its own
    client.force_login(make_user("city"))
    assert listed(f"institution__county__id__exact={place['wuxing'].parent_id}") == []
    # a stored row keeps the level its institution had when computed; a matching row shows its institution's
    place["二级"].level = "一级"
    place["二级"].save()
    assert listed("level__exact=二级") == of("MZ-OVER", "MZ-NANXUN")
    assert listed("level__exact=一级") == of("MZ-R2", "ZY-R")
    # a county that is not a number: the admin's own error page for bad filters, no rows read
    response = client.get(reverse(RECONCILE) + "?differs=all&institution__county__id__exact=abc")
    assert response.status_code == 302 and "e=1" in response["Location"]


def test_all_exports_only_what_fits_and_says_why_not(client, make_user, year, monkeypatch):
    place, rows, _ = year
    client.force_login(make_user("city"))
    export = reverse("admin:settlement_benefitfigure_export")
    monkeypatch.setattr(admin.site._registry[BenefitFigure], "EXPORT_ROWS", 6)  # the year has 7 claims and cases
    response = client.get(export + "?differs=all", follow=True)
    assert response.redirect_chain[0][0] == reverse(RECONCILE) + "?differs=all"
    assert "符合条件的记录超过6条，未导出" in response.content.decode()
    monkeypatch.setattr(admin.site._registry[BenefitFigure], "EXPORT_ROWS", 7)
    response = client.get(export + "?differs=all")
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(row[2].value for row in book["核对清单"].iter_rows(min_row=2)) == sorted(rows)
