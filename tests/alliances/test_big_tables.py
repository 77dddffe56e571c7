"""Changelists over big tables: no counts, no date DISTINCT, one indexed lookup per search shape."""
import datetime
import html
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alliances.big_tables import PeriodFilter
from contracts.models import InsuredPerson
from settlement.models import OutpatientClaim, VisitType
from tests import factories

CHANGELISTS = [
    "admin:settlement_outpatientclaim_changelist",
    "admin:settlement_inpatientcase_changelist",
    "admin:settlement_familydoctorservice_changelist",
    "admin:contracts_insuredperson_changelist",
    "admin:contracts_contract_changelist",
    "admin:contracts_diseaseregistration_changelist",
]


@pytest.fixture
def world(db, county, other_county):
    inst = factories.institution(county=county, code="H33050200001")
    far = factories.institution(county=other_county, code="H33050300001")
    people = [factories.person(county=county, name=f"张{i}") for i in range(3)] + [factories.person(county=other_county, name="李四")]
    return inst, far, people


def claim(inst, person, serial, day, fund="7.00"):
    return OutpatientClaim.objects.create(
        institution=inst, serial=serial, person=person, visit_date=day, insurance_type=person.insurance_type,
        visit_type=VisitType.GENERAL, total_cost=Decimal("10.00"), fund_paid=Decimal(fund),
        personal_paid=Decimal("10.00") - Decimal(fund),
    )


def add_claims(inst, person, count, start=0, day=datetime.date(2025, 3, 1)):
    OutpatientClaim.objects.bulk_create([
        OutpatientClaim(
            institution=inst, serial=f"MZ{start + i:08d}", person=person, visit_date=day, insurance_type=person.insurance_type,
            visit_type=VisitType.GENERAL, total_cost=Decimal("10.00"), fund_paid=Decimal("7.00"), personal_paid=Decimal("3.00"),
        )
        for i in range(count)
    ])


def listed_serials(response):
    return [row.serial for row in response.context["cl"].result_list]


@pytest.mark.parametrize("name", CHANGELISTS)
def test_a_page_costs_the_same_queries_whatever_its_size_and_never_counts(client, make_user, world, name):
    """Query-count test (issue 13): 3 rows or 60, the same queries, none a COUNT or a DISTINCT of dates."""
    inst, _, people = world
    client.force_login(make_user("city"))
    url = reverse(name)
    add_claims(inst, people[0], 3)
    client.get(url)  # the first request of a session also loads what is cached afterwards
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    add_claims(inst, people[0], 57, start=100)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200
    assert len(few.captured_queries) == len(many.captured_queries)
    for query in many.captured_queries:
        sql = query["sql"].upper()
        assert "COUNT(" not in sql, sql
        assert "DISTINCT" not in sql, sql


def test_pages_go_forward_and_back_without_a_total(client, make_user, world):
    inst, _, people = world
    add_claims(inst, people[0], 51)  # one more than a page
    client.force_login(make_user("city"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    first = client.get(url)
    assert len(first.context["cl"].result_list) == 50
    assert first.context["portal_page_has_more"] is True
    assert "下一页" in first.content.decode() and "不统计总条数" in first.content.decode()
    second = client.get(url, {"p": 2})
    assert len(second.context["cl"].result_list) == 1
    assert second.context["portal_page_has_more"] is False
    page = second.content.decode()
    assert "下一页" not in page and "上一页" in page and "第 2 页" in page
    assert set(listed_serials(first)) | set(listed_serials(second)) == {f"MZ{i:08d}" for i in range(51)}


def test_search_picks_the_column_by_the_shape_of_the_term(client, make_user, world, county):
    inst, far, people = world
    mine = claim(inst, people[0], "MZ001", datetime.date(2025, 1, 5))
    other_person = claim(inst, people[1], "MZ002", datetime.date(2025, 1, 6))
    elsewhere = claim(far, people[3], "MZ003", datetime.date(2025, 1, 7))
    client.force_login(make_user("city"))
    url = reverse("admin:settlement_outpatientclaim_changelist")

    def found(term):
        return set(listed_serials(client.get(url, {"q": term})))

    assert found(people[0].id_number) == {mine.serial}
    assert found(people[0].id_number.lower()) == {mine.serial}  # a final x typed in lower case
    assert found("H33050300001") == {elsewhere.serial}
    assert found("h33050200001") == {mine.serial, other_person.serial}
    assert found("330503") == {elsewhere.serial}  # a county code: that county's institutions
    assert found("MZ002") == {other_person.serial}
    assert found("MZ00") == set()  # serials match whole, never by part
    assert found("  ") == {mine.serial, other_person.serial, elsewhere.serial}


def test_person_search_by_surname_or_whole_name_and_id(client, make_user, world):
    _, _, people = world
    client.force_login(make_user("city"))
    url = reverse("admin:contracts_insuredperson_changelist")

    def found(term):
        return {p.pk for p in client.get(url, {"q": term}).context["cl"].result_list}

    assert found("张") == {p.pk for p in people[:3]}
    assert found("张1") == set()  # digits are never a name: no name matches, and it is no ID either
    assert found("李四") == {people[3].pk}
    assert found("四") == set()  # from the start of the name only
    assert found(people[2].id_number) == {people[2].pk}


def test_search_stays_inside_the_scope(client, make_user, world):
    inst, far, people = world
    claim(inst, people[0], "MZ001", datetime.date(2025, 1, 5))
    claim(far, people[3], "MZ003", datetime.date(2025, 1, 7))
    client.force_login(make_user("hospital", "H33050200001"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    assert listed_serials(client.get(url, {"q": "MZ003"})) == []
    assert listed_serials(client.get(url, {"q": "330503"})) == []
    assert listed_serials(client.get(url, {"q": people[3].id_number})) == []
    assert listed_serials(client.get(url)) == ["MZ001"]


def test_period_filter_by_year_and_month(client, make_user, world):
    inst, _, people = world
    claim(inst, people[0], "MZ-2024-12", datetime.date(2024, 12, 31))
    claim(inst, people[0], "MZ-2025-01", datetime.date(2025, 1, 1))
    claim(inst, people[0], "MZ-2025-02", datetime.date(2025, 2, 28))
    client.force_login(make_user("city"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    assert set(listed_serials(client.get(url, {"period": "2025"}))) == {"MZ-2025-01", "MZ-2025-02"}
    assert listed_serials(client.get(url, {"period": "2025-02"})) == ["MZ-2025-02"]
    assert listed_serials(client.get(url, {"period": "2024-12"})) == ["MZ-2024-12"]
    page = client.get(url, {"period": "2025"}).content.decode()
    assert "2024年" in page and "2025年" in page and "2025年2月" in page  # years from MIN/MAX, months of the chosen one
    # A hand-edited value filters nothing rather than failing.
    assert len(listed_serials(client.get(url, {"period": "2025-13"}))) == 3


@pytest.mark.parametrize("value, span", [
    ("2025", (datetime.date(2025, 1, 1), datetime.date(2026, 1, 1))),
    ("2025-12", (datetime.date(2025, 12, 1), datetime.date(2026, 1, 1))),
    ("2024-02", (datetime.date(2024, 2, 1), datetime.date(2024, 3, 1))),
    ("2025-00", None), ("20251", None), ("", None), ("abcd", None),
])
def test_period_span(value, span):
    assert PeriodFilter.span(value) == span


def test_the_drilldown_date_range_still_filters(client, make_user, world):
    inst, _, people = world
    claim(inst, people[0], "MZ-A", datetime.date(2025, 1, 1))
    claim(inst, people[0], "MZ-B", datetime.date(2025, 6, 1))
    client.force_login(make_user("city"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    response = client.get(url, {"visit_date__gte": "2025-05-01", "visit_date__lte": "2025-12-31"})
    assert listed_serials(response) == ["MZ-B"]


def test_show_all_never_reads_the_whole_table(client, make_user, world):
    inst, _, people = world
    add_claims(inst, people[0], 60)
    client.force_login(make_user("city"))
    response = client.get(reverse("admin:settlement_outpatientclaim_changelist"), {"all": ""})
    assert len(response.context["cl"].result_list) == 50


def test_unindexed_date_columns_offer_recent_years_without_scanning(client, make_user, world):
    client.force_login(make_user("city"))
    url = reverse("admin:contracts_contract_changelist")
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url).content.decode()
    this_year = datetime.date.today().year
    assert f"{this_year}年" in page and f"{this_year - 5}年" in page and f"{this_year - 6}年" not in page
    assert not any("MIN(" in query["sql"].upper() for query in queries.captured_queries)
    # A year chosen by hand outside the recent ones is still offered, so the filter shows what is on.
    assert "2001年" in client.get(url, {"period": "2001"}).content.decode()


def test_a_serial_is_found_through_the_business_key(client, make_user, world):
    inst, far, people = world
    claim(inst, people[0], "SAME-1", datetime.date(2025, 1, 5))
    claim(far, people[3], "SAME-1", datetime.date(2025, 1, 6))  # the same serial at another institution
    client.force_login(make_user("city"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    found = client.get(url, {"q": "SAME-1"}).context["cl"].result_list
    assert {(row.institution_id, row.serial) for row in found} == {(inst.pk, "SAME-1"), (far.pk, "SAME-1")}


def test_a_contract_page_costs_the_same_queries_for_3_or_60_contracts(client, make_user, world):
    """Each row shows its team with the team's institution: joined, never read row by row."""
    inst, _, people = world
    client.force_login(make_user("city"))
    url = reverse("admin:contracts_contract_changelist")

    def sign(count):
        for i in range(count):
            factories.contract(factories.person(county=inst.county), inst, datetime.date(2025, 1, 1))

    sign(3)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    sign(57)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(few.captured_queries) == len(many.captured_queries)


def test_a_hospital_searching_another_institution_gets_nothing_at_once(client, make_user, world):
    inst, far, people = world
    claim(far, people[3], "MZ003", datetime.date(2025, 1, 7))
    client.force_login(make_user("hospital", "H33050200001"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    with CaptureQueriesContext(connection) as queries:
        assert listed_serials(client.get(url, {"q": "H33050300001"})) == []
    # No query asks the claims table for that institution: the answer is known from the scope.
    assert not any(f'"institution_id" IN ({far.pk})' in q["sql"] for q in queries.captured_queries)


def reads_claim_rows(queries):
    """Queries on the claims table other than the period filter's MIN/MAX of the visit date."""
    return [q["sql"] for q in queries.captured_queries
            if '"settlement_outpatientclaim"' in q["sql"] and "MIN(" not in q["sql"].upper()]


def test_a_county_searching_another_countys_institution_gets_nothing_at_once(client, make_user, world):
    inst, far, people = world
    mine = claim(inst, people[0], "MZ001", datetime.date(2025, 1, 5))
    claim(far, people[3], "MZ003", datetime.date(2025, 1, 7))
    client.force_login(make_user("county", "330502"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    with CaptureQueriesContext(connection) as queries:
        assert listed_serials(client.get(url, {"q": "H33050300001"})) == []
    assert not reads_claim_rows(queries)
    with CaptureQueriesContext(connection) as queries:
        assert listed_serials(client.get(url, {"q": "330503"})) == []  # another county's code: the same
    assert not reads_claim_rows(queries)
    assert listed_serials(client.get(url, {"q": "H33050200001"})) == [mine.serial]
    assert listed_serials(client.get(url, {"q": "330502"})) == [mine.serial]
    assert listed_serials(client.get(url, {"q": "MZ003"})) == []  # the serial probes only its own institutions
    assert listed_serials(client.get(url, {"q": "MZ001"})) == [mine.serial]


def test_a_person_treated_in_the_county_is_found_by_id_whatever_county_insures_them(client, make_user, world):
    """The person is not the claim's scope: an ID number from another county still finds the claims
    the county may see (a claim is the county's by its institution)."""
    inst, far, people = world
    visiting = claim(inst, people[3], "MZ004", datetime.date(2025, 1, 8))  # 李四 is insured in 330503
    claim(far, people[3], "MZ005", datetime.date(2025, 1, 9))
    client.force_login(make_user("county", "330502"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    assert listed_serials(client.get(url, {"q": people[3].id_number})) == [visiting.serial]


def test_a_county_reads_its_claims_by_their_own_institution_column(client, make_user, world, other_county):
    """The county scope is a list of the county's institutions on the claims' own column, never a
    join to the institutions (the planner then reads deep pages by the primary key)."""
    inst, far, people = world
    second = factories.institution(county=inst.county, code="H33050200002")
    moved = factories.institution(county=other_county, code="H33050300002")
    claim(inst, people[0], "MZ001", datetime.date(2025, 1, 5))
    claim(second, people[1], "MZ002", datetime.date(2025, 1, 6))
    claim(far, people[3], "MZ003", datetime.date(2025, 1, 7))
    claim(moved, people[3], "MZ004", datetime.date(2025, 1, 8))
    client.force_login(make_user("county", "330502"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    with CaptureQueriesContext(connection) as queries:
        assert set(listed_serials(client.get(url))) == {"MZ001", "MZ002"}
    keys = [q["sql"] for q in queries.captured_queries
            if q["sql"].startswith('SELECT "settlement_outpatientclaim"."id" AS "pk" FROM') and "LIMIT 51" in q["sql"]]
    assert keys and all("JOIN" not in sql for sql in keys), keys
    # An institution that joins the county is the county's from the next request on.
    moved.county = inst.county
    moved.save()
    assert set(listed_serials(client.get(url))) == {"MZ001", "MZ002", "MZ004"}


def next_link(response):
    match = re.search(r'<a href="([^"]+)">下一页</a>', response.content.decode())
    return match and html.unescape(match.group(1))


def key_queries(queries, table):
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].startswith(f'SELECT "{table}"."id" AS "pk" FROM') and "LIMIT 51" in q["sql"]]


def test_next_page_links_start_after_the_last_row_and_list_what_the_offsets_list(client, make_user, world):
    """下一页 carries the last row's key: the next page is read after it (keyset), no OFFSET, and
    walking the links lists every row once, in the order the page numbers give."""
    inst, _, people = world
    add_claims(inst, people[0], 125)
    client.force_login(make_user("city"))
    url = reverse("admin:settlement_outpatientclaim_changelist")
    by_offset = [listed_serials(client.get(url, {"p": n})) for n in (1, 2, 3)]
    assert [len(page) for page in by_offset] == [50, 50, 25]
    response, walked = client.get(url), []
    while True:
        walked.append(listed_serials(response))
        link = next_link(response)
        if not link:
            break
        assert "k=" in link
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url + link)
        keys = key_queries(queries, "settlement_outpatientclaim")
        assert len(keys) == 1 and "OFFSET" not in keys[0] and '"id" < ' in keys[0], keys
    assert walked == by_offset
    assert "第 3 页" in response.content.decode() and "上一页" in response.content.decode()
    assert f'href="?p=2"' in response.content.decode()  # 上一页 by its number, without the cursor


def test_a_person_list_walks_by_id_number_and_a_sorted_list_by_offset(client, make_user, world, county):
    for i in range(60):
        factories.person(county=county, name=f"王{i}")
    client.force_login(make_user("city"))
    url = reverse("admin:contracts_insuredperson_changelist")
    first = client.get(url)
    second = client.get(url + next_link(first))
    numbers = [p.id_number for p in first.context["cl"].result_list] + [p.id_number for p in second.context["cl"].result_list]
    assert numbers == sorted(numbers) and len(numbers) == 64
    assert numbers[49] not in next_link(first)  # the cursor is a row key, never an ID number
    # Sorted by a column (not unique): the next page is read by its offset, the link has no cursor.
    cases = client.get(reverse("admin:settlement_inpatientcase_changelist"), {"o": "-2"})
    assert cases.status_code == 200 and not cases.context["portal_next_cursor"]


def test_a_cursor_whose_row_is_gone_or_garbled_still_gives_the_page(client, make_user, world, county):
    for i in range(60):
        factories.person(county=county, name=f"王{i}")
    client.force_login(make_user("city"))
    url = reverse("admin:contracts_insuredperson_changelist")
    first = client.get(url)
    expected = [p.pk for p in client.get(url, {"p": 2}).context["cl"].result_list]
    last = first.context["cl"].result_list[49].pk
    InsuredPerson.objects.filter(pk=last).delete()  # the row the cursor names: page 2 by its offset (one row on)
    assert [p.pk for p in client.get(url, {"p": 2, "k": last}).context["cl"].result_list] == expected[1:]
    garbled = client.get(url, {"p": 2, "k": "x1"})
    assert garbled.status_code == 200 and [p.pk for p in garbled.context["cl"].result_list] == expected[1:]
    # A filter link on a cursor page starts from page 1 and forgets the cursor.
    page = client.get(url, {"p": 2, "k": first.context["cl"].result_list[48].pk}).content.decode()
    outside_pager = re.sub(r'<p class="paginator portal-pager">.*?</p>', "", page, flags=re.S)
    filter_links = re.findall(r'href="(\?[^"]*)"', outside_pager)
    assert filter_links and not [link for link in filter_links if "k=" in link or "p=" in link], filter_links
